"""Content discovery: /v2/ version check, tags/list, referrers and _catalog."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from aiohttp import web

from registry.appkeys import METADATA
from registry.auth.authorize import authorize, is_allowed, principal_of
from registry.auth.listing import MAX_SKIP, Cursor, visible_page
from registry.metadata.models import ManifestRecord
from registry.oci.context import account_of, existing_repository, repository_name
from registry.oci.digests import parse_digest
from registry.oci.errors import Unsupported
from registry.oci.manifests import OCI_INDEX

CATALOG_PAGE = 1000
REFERRERS_PAGE = 1000


def _json(body: object, *, headers: dict[str, str] | None = None,
          content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(),
                        content_type=content_type, headers=headers)


def _page_size(request: web.Request, default: int | None, maximum: int) -> int | None:
    text = request.query.get("n")
    if text is None or text == "":
        return default
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses (a 500).
    if not (text.isascii() and text.isdigit()):
        raise Unsupported(f"invalid pagination number: {text[:20]!r}", status=400)
    digits = text.lstrip("0")
    return maximum if len(digits) > len(str(maximum)) else min(int(digits or "0"), maximum)


def _link(path: str, params: dict[str, str]) -> str:
    return f'<{path}?{urlencode(params)}>; rel="next"'


async def version_check(request: web.Request) -> web.Response:
    return _json({})


async def list_tags(request: web.Request) -> web.Response:
    name = repository_name(request)
    account = account_of(request)
    await authorize(request, "ecr:ListImages", account, name)
    repo = await existing_repository(request, account, name)
    n = _page_size(request, None, 10000)
    last = request.query.get("last") or None
    headers: dict[str, str] = {}
    if n == 0:
        return _json({"name": name, "tags": []})
    metadata = request.app[METADATA]
    tags = await metadata.list_tags(repo.id, last=last, limit=None if n is None else n + 1)
    if n is not None and len(tags) > n:
        tags = tags[:n]
        headers["Link"] = _link(f"/v2/{name}/tags/list", {"n": str(n), "last": tags[-1]})
    return _json({"name": name, "tags": tags}, headers=headers)


def _descriptor(record: ManifestRecord) -> dict[str, object]:
    descriptor: dict[str, object] = {"mediaType": record.media_type, "digest": record.digest,
                                     "size": record.size}
    if record.artifact_type:
        descriptor["artifactType"] = record.artifact_type
    if record.annotations:
        descriptor["annotations"] = record.annotations
    return descriptor


async def list_referrers(request: web.Request) -> web.Response:
    name = repository_name(request)
    subject = parse_digest(request.match_info["digest"])
    account = account_of(request)
    await authorize(request, "ecr:BatchGetImage", account, name)
    repo = await existing_repository(request, account, name)
    artifact_type = request.query.get("artifactType") or None
    records = await request.app[METADATA].list_referrers(repo.id, str(subject), artifact_type)
    last = request.query.get("last")
    if last:
        records = [r for r in records if r.digest > last]
    headers: dict[str, str] = {}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    if len(records) > REFERRERS_PAGE:
        records = records[:REFERRERS_PAGE]
        params = {"last": records[-1].digest}
        if artifact_type:
            params["artifactType"] = artifact_type
        headers["Link"] = _link(f"/v2/{name}/referrers/{subject}", params)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [_descriptor(r) for r in records]}
    return _json(index, headers=headers, content_type=OCI_INDEX)


def _catalog_cursor(request: web.Request) -> Cursor:
    """Raises: Unsupported (400) for a ``skip`` that is not a small count."""
    skip = request.query.get("skip") or "0"
    if not (skip.isascii() and skip.isdigit()) or len(skip) > 10 or int(skip) > MAX_SKIP:
        raise Unsupported(f"invalid pagination number: {skip[:20]!r}", status=400)
    return Cursor(request.query.get("last") or None, int(skip))


async def catalog(request: web.Request) -> web.Response:
    """Repositories the caller may describe: a refusal hides an entry, it does not fail, and
    neither the page nor its ``Link`` names a hidden repository (registry/auth/listing.py).

    Raises:
        Unauthorized/Denied on resource ``repository/*`` when the caller may see no
        repository at all (an anonymous caller is thus asked to log in).
    """
    account = account_of(request)
    n = _page_size(request, CATALOG_PAGE, 10000)
    assert n is not None
    cursor = _catalog_cursor(request)
    if n == 0:
        return _json({"repositories": []})
    metadata = request.app[METADATA]

    async def fetch(position: Cursor, limit: int) -> list[str]:
        return await metadata.list_repositories(account, last=position.after, limit=limit,
                                                skip=position.skip)

    async def visible(name: str) -> bool:
        return await is_allowed(request, "ecr:DescribeRepositories", account, name,
                                record=False)

    page = await visible_page(fetch, visible, lambda name: name, cursor=cursor, limit=n)
    # An empty first page must still be a permitted answer. An anonymous caller is asked to
    # log in even when the scan budget ran out first: its client would never follow a Link
    # through thousands of hidden names before learning that it should authenticate.
    if not page.items and cursor.is_start and (
            page.next is None or principal_of(request).is_anonymous):
        await authorize(request, "ecr:DescribeRepositories", account, "*")
    headers: dict[str, str] = {}
    if page.next is not None:
        params = {"n": str(n)}
        if page.next.after is not None:
            params["last"] = page.next.after
        if page.next.skip:
            params["skip"] = str(page.next.skip)
        headers["Link"] = _link("/v2/_catalog", params)
    return _json({"repositories": page.items}, headers=headers)
