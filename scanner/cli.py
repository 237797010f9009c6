"""``berth scanner update-db``: load Trivy's vulnerability DB into Berth.

``--file`` takes a ``db.tar.gz`` (trivy.db + metadata.json, the artifact layer format);
``--from`` copies the artifact from any OCI registry (e.g. ``ghcr.io/aquasecurity/trivy-db:2``
or an internal mirror), or reads a local ``db.tar.gz`` like ``--file`` when given a path.
Either way the DB is validated first, then stored as ``<db_repository>:<db_tag>`` in the
default account, where every scan worker picks it up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.config import load_config

if TYPE_CHECKING:  # imported when a command runs: registration stays argparse only
    import aiohttp

_REF = re.compile(r"(?P<host>[^/\s]+)/(?P<repo>[^:@\s]+)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?")
ACCEPT = "application/vnd.oci.image.manifest.v1+json"


class FetchError(RuntimeError):
    pass


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
               auth: aiohttp.BasicAuth | None) -> bytes:
    async with session.get(url, headers=headers) as response:
        if response.status == 401 and "Bearer" in response.headers.get("WWW-Authenticate", ""):
            token = await _bearer(session, response.headers["WWW-Authenticate"], auth)
            headers = {**headers, "Authorization": f"Bearer {token}"}
            async with session.get(url, headers=headers) as retry:
                retry.raise_for_status()
                return await retry.read()
        if response.status == 401 and auth is not None:
            async with session.get(url, headers=headers, auth=auth) as retry:
                retry.raise_for_status()
                return await retry.read()
        response.raise_for_status()
        return await response.read()


async def _bearer(session: aiohttp.ClientSession, challenge: str,
                  auth: aiohttp.BasicAuth | None) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    async with session.get(realm, params=params, auth=auth) as response:
        response.raise_for_status()
        body = await response.json(content_type=None)
    return body.get("token") or body.get("access_token") or ""


async def fetch_layer(ref: str, *, insecure: bool, auth: aiohttp.BasicAuth | None) -> bytes:
    """Download the DB layer of the artifact ``ref`` (host/repository[:tag]).

    Raises:
        FetchError: the reference is malformed or the artifact has no DB layer.
    """
    import aiohttp

    from policies.jsondoc import JsonTextError, strict_loads
    from scanner.trivydb import LAYER_MEDIA_TYPE

    match = _REF.fullmatch(ref)
    if match is None:
        raise FetchError(f"not a registry reference: {ref!r}")
    host, repo, tag = match["host"], match["repo"], match["tag"] or "2"
    local = host.split(":")[0] in ("localhost", "127.0.0.1", "::1")
    base = f"{'http' if insecure or local else 'https'}://{host}/v2/{repo}"
    timeout = aiohttp.ClientTimeout(total=1800, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            # A remote registry's answer is input like any other: parsed strictly.
            manifest = strict_loads(await _get(session, f"{base}/manifests/{tag}",
                                               {"Accept": ACCEPT}, auth), max_depth=16)
        except JsonTextError as exc:
            raise FetchError(f"{ref}: the manifest is not valid JSON: {exc}") from None
        raw_layers = manifest.get("layers") if isinstance(manifest, dict) else None
        layers = [l for l in raw_layers if isinstance(l, dict)
                  and l.get("mediaType") == LAYER_MEDIA_TYPE
                  and isinstance(l.get("digest"), str)] if isinstance(raw_layers, list) else []
        if not layers:
            raise FetchError(f"{ref} is not a Trivy DB artifact (no {LAYER_MEDIA_TYPE} layer)")
        return await _get(session, f"{base}/blobs/{layers[0]['digest']}", {}, auth)


def _local_file(source: str) -> str | None:
    """``--from`` naming a file on this machine: it is read like ``--file``.

    Raises:
        FetchError: ``source`` is spelled like a path (``/``, ``./``, ``../``, ``~``, or a
            ``.tar.gz``/``.tgz`` name) but no such file exists.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return str(path)
    if source.startswith(("/", "./", "../", "~")) or source.endswith((".tar.gz", ".tgz")):
        raise FetchError(f"{source}: no such file (--from takes a registry reference or a "
                         "db.tar.gz path)")
    return None


async def _update(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    from registry.blobcache import BlobCache
    from registry.datadir import ensure_data_dir
    from registry.metadata.factory import open_store
    from registry.storage.factory import open_blob_store
    from scanner.dbsync import publish_db

    config = load_config(args.config, overrides={"data_dir": args.data})
    ensure_data_dir(config.data_dir)
    local = args.file or _local_file(args.from_ref)
    if local:
        layer = Path(local).read_bytes()
    else:
        auth = aiohttp.BasicAuth(args.username, args.password or "") if args.username else None
        layer = await fetch_layer(args.from_ref, insecure=args.insecure, auth=auth)
    metadata = open_store(config)
    try:
        digest = await publish_db(metadata=metadata, blobs=open_blob_store(config),
                                  cache=BlobCache(1024 * 1024), config=config, layer=layer)
    finally:
        await metadata.close()
    return {"manifestDigest": digest,
            "reference": f"{config.scanner.db_repository}:{config.scanner.db_tag}"}


def _cmd_update(args: argparse.Namespace) -> int:
    import aiohttp

    from scanner.trivydb import InvalidDatabase

    try:
        result = asyncio.run(_update(args))
    except InvalidDatabase as exc:
        print(f"berth: invalid vulnerability database: {exc}", file=sys.stderr)
        return 1
    except (FetchError, aiohttp.ClientError, OSError) as exc:
        print(f"berth: cannot load the vulnerability database: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("scanner", help="vulnerability scanning")
    sub = parser.add_subparsers(dest="scanner_command", required=True)
    update = sub.add_parser("update-db", help="load Trivy's vulnerability DB into Berth")
    update.add_argument("--config", metavar="FILE")
    update.add_argument("--data", metavar="DIR")
    source = update.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="from_ref", metavar="REF",
                        help="registry reference, e.g. ghcr.io/aquasecurity/trivy-db:2, "
                        "or a local db.tar.gz (as --file)")
    source.add_argument("--file", metavar="DB_TAR_GZ", help="a db.tar.gz (trivy.db + metadata.json)")
    update.add_argument("--insecure", action="store_true", help="plain HTTP to the source")
    update.add_argument("--username")
    update.add_argument("--password")
    update.set_defaults(func=_cmd_update)
    return parser
