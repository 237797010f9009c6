"""Trivy's vulnerability DB: the OCI artifact Berth hosts, and its installation in a cache.

A Trivy cache directory, as this module lays it out (scanning.md §5.1, §5.4)::

    <cache>/
      db -> db.<hex>        symlink, replaced atomically by install_db()
      db.<hex>/             one installed DB: trivy.db (BoltDB, schema 2) + metadata.json;
                            the current one and the one before it are kept
      db.tmp-<random>/      staging for an install in progress (swept by the next install)
      java-db/              an empty Java DB, so images with jars never abort a scan
        trivy-java.db
        metadata.json
      fanal/                Trivy's own per-layer analysis cache (written by Trivy)
      .install.lock         serialises install_db() calls on one cache

Trivy only reads ``<cache>/db/{trivy.db,metadata.json}``; the symlink lets a new DB replace
the old one with a single ``rename(2)``, so a scan starting at any moment sees one complete
DB, and a scan already running keeps its open file. The previous version is kept so that a
scan which resolved the link just before the swap still finds its files.

The artifact (§2.4, §2.7; trivy ``pkg/oci/artifact.go``): an OCI manifest with config media
type ``application/vnd.aquasec.trivy.config.v1+json`` and exactly one layer,
``application/vnd.aquasec.trivy.db.layer.v1.tar+gzip``, a tar.gz of ``trivy.db`` and
``metadata.json`` whose ``org.opencontainers.image.title`` annotation names the file
(``db.tar.gz``) — Trivy's downloader refuses a layer without it.

Everything here is blocking file I/O: call it from a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import struct
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Iterator

from registry.storage.syncio import fsync_dir

CONFIG_MEDIA_TYPE = "application/vnd.aquasec.trivy.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
LAYER_TITLE = "db.tar.gz"
SCHEMA_VERSION = 2
DB_FILE, METADATA_FILE = "trivy.db", "metadata.json"
_BOLT_MAGIC, _BOLT_VERSION = 0xED0CDAED, 2
_FAR_FUTURE = "2999-01-01T00:00:00Z"


class InvalidDatabase(ValueError):
    """A DB artifact or installed DB is not a usable Trivy schema-2 DB; nothing was changed."""


@dataclass(frozen=True, slots=True)
class DbMetadata:
    version: int
    updated_at: datetime  # when the advisories were last refreshed upstream (aware, UTC)
    next_update: datetime | None
    downloaded_at: datetime | None


# -- paths ---------------------------------------------------------------------------------


def db_dir(cache_dir: Path) -> Path:
    """Where Trivy reads the DB: ``<cache>/db``."""
    return cache_dir / "db"


def java_db_dir(cache_dir: Path) -> Path:
    return cache_dir / "java-db"


# -- reading -------------------------------------------------------------------------------


def read_db_metadata(cache_dir: Path) -> DbMetadata | None:
    """The metadata of the DB installed in ``cache_dir``, or None when there is none.

    Raises:
        InvalidDatabase: ``metadata.json`` exists but is unreadable, or not schema 2.
    """
    path = db_dir(cache_dir) / METADATA_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidDatabase(f"cannot read {METADATA_FILE}: {exc.strerror}") from None
    return parse_metadata(raw)


def parse_metadata(raw: bytes) -> DbMetadata:
    """Validate and decode a ``metadata.json``.

    Raises:
        InvalidDatabase: not JSON, ``Version`` is not 2, or ``UpdatedAt`` is missing/invalid.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidDatabase(f"{METADATA_FILE} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidDatabase(f"{METADATA_FILE} is not a JSON object")
    if data.get("Version") != SCHEMA_VERSION:
        raise InvalidDatabase(
            f"DB schema version {data.get('Version')!r}; Trivy 0.76 reads version 2")
    updated_at = _time(data.get("UpdatedAt"))
    if updated_at is None:
        raise InvalidDatabase(f"{METADATA_FILE} has no valid UpdatedAt")
    return DbMetadata(SCHEMA_VERSION, updated_at, _time(data.get("NextUpdate")),
                      _time(data.get("DownloadedAt")))


def check_bolt_file(path: Path) -> None:
    """Check that ``path`` starts like a bbolt file that bbolt will open: a meta page with
    the magic, format version 2 and a valid FNV-1a checksum (scanning.md §5.2).

    Raises:
        InvalidDatabase: the file is missing, too short, or has no valid meta page.
    """
    try:
        with path.open("rb") as f:
            head = f.read(16 + 64)
            if len(head) < 80:
                raise InvalidDatabase(f"{DB_FILE} is not a BoltDB file (too short)")
            page_size = struct.unpack_from("<I", head, 24)[0]
            pages = [head]
            if 1024 <= page_size <= 65536:
                f.seek(page_size)
                pages.append(f.read(80))
    except FileNotFoundError:
        raise InvalidDatabase(f"{DB_FILE} is missing") from None
    if not any(_meta_ok(page) for page in pages):
        raise InvalidDatabase(f"{DB_FILE} is not a valid BoltDB file (bad meta page)")


def _meta_ok(page: bytes) -> bool:
    if len(page) < 80:
        return False
    magic, version = struct.unpack_from("<II", page, 16)
    checksum = struct.unpack_from("<Q", page, 16 + 56)[0]
    return magic == _BOLT_MAGIC and version == _BOLT_VERSION and checksum == fnv1a64(
        page[16:16 + 56])


def fnv1a64(data: bytes) -> int:
    """FNV-1a 64-bit, the hash bbolt uses for its meta page checksum."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# -- the artifact --------------------------------------------------------------------------


def build_db_artifact(source_dir: Path) -> tuple[bytes, bytes]:
    """Package ``source_dir/{trivy.db,metadata.json}`` as Trivy's DB artifact.

    Returns ``(config_bytes, layer_tar_gz_bytes)``; ``db_artifact_manifest`` ties them
    together. The tar.gz is reproducible (fixed mtimes and owners, no gzip timestamp).

    Raises:
        InvalidDatabase: the directory does not hold a valid schema-2 DB.
    """
    try:
        parse_metadata((source_dir / METADATA_FILE).read_bytes())
    except FileNotFoundError:
        raise InvalidDatabase(f"{METADATA_FILE} is missing") from None
    check_bolt_file(source_dir / DB_FILE)
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in (DB_FILE, METADATA_FILE):
                info = tar.gettarinfo(str(source_dir / name), arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                info.mode = 0o644
                with (source_dir / name).open("rb") as f:
                    tar.addfile(info, f)
    return b"{}", raw.getvalue()


def db_artifact_manifest(config: bytes, layer: bytes, *,
                         annotations: dict[str, str] | None = None) -> bytes:
    """The OCI image manifest that publishes a DB artifact (push config and layer first)."""
    def descriptor(media_type: str, data: bytes) -> dict:
        return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                "size": len(data)}

    manifest: dict = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(CONFIG_MEDIA_TYPE, config),
        "layers": [descriptor(LAYER_MEDIA_TYPE, layer)
                   | {"annotations": {"org.opencontainers.image.title": LAYER_TITLE}}],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()


# -- installing ----------------------------------------------------------------------------


def install_db(layer_tar_gz: Path | bytes, cache_dir: Path) -> datetime:
    """Install a DB artifact's layer into ``cache_dir`` and return its UpdatedAt.

    Only ``trivy.db`` and ``metadata.json`` are extracted (other regular files are ignored);
    both are validated in a staging directory before ``<cache>/db`` is switched to them in
    one rename. Concurrent installs on one cache are serialised by a lock file.

    Raises:
        InvalidDatabase: not a tar.gz; a member with an absolute path, ``..``, or a link or
            device type; a file missing or duplicated; metadata not schema 2; trivy.db not a
            valid BoltDB file. The previously installed DB is left in place.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _install_lock(cache_dir):
        _sweep_staging(cache_dir)
        # mkdtemp makes it 0700 and the files are 0600: Trivy runs as the server's user, and
        # nobody else has business in the data directory (registry/datadir.py).
        staging = Path(tempfile.mkdtemp(prefix="db.tmp-", dir=cache_dir))
        try:
            metadata = _extract(layer_tar_gz, staging)
            final = cache_dir / ("db." + os.urandom(8).hex())
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _switch_link(cache_dir, final)
        _prune_versions(cache_dir, keep={final.name})
    return metadata.updated_at


def ensure_java_db(cache_dir: Path) -> None:
    """Create an empty Java DB in ``cache_dir`` unless one exists (scanning.md §5.4).

    Trivy with ``--skip-java-db-update`` aborts on any image holding a jar when no Java DB
    exists; an empty one makes it identify jars from ``pom.properties`` instead.
    """
    target = java_db_dir(cache_dir)
    if (target / "trivy-java.db").exists() and (target / METADATA_FILE).exists():
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="java-db.tmp-", dir=cache_dir))
    try:
        with sqlite3.connect(staging / "trivy-java.db") as conn:
            # The schema of aquasecurity/trivy-java-db pkg/db/db.go Init().
            conn.executescript(
                "CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT);"
                "CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB,"
                " archive_type TEXT, FOREIGN KEY (artifact_id) REFERENCES artifacts(id));"
                "CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id);"
                "CREATE INDEX indices_artifact_idx ON indices(artifact_id);"
                "CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1);")
        conn.close()
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        (staging / METADATA_FILE).write_text(json.dumps(
            {"Version": 1, "NextUpdate": _FAR_FUTURE, "UpdatedAt": now, "DownloadedAt": now}))
        try:
            os.rename(staging, target)
        except OSError:  # another worker won the race; its DB is as good as ours
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract(source: Path | bytes, staging: Path) -> DbMetadata:
    wanted = {DB_FILE, METADATA_FILE}
    seen: set[str] = set()
    try:
        with _open_source(source) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                name = _member_name(member)
                if name is None:
                    continue
                if name not in wanted:
                    continue
                if name in seen:
                    raise InvalidDatabase(f"artifact holds {name} twice")
                seen.add(name)
                stream = tar.extractfile(member)
                assert stream is not None  # regular files always have a stream
                with (staging / name).open("wb") as out:
                    shutil.copyfileobj(stream, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(staging / name, 0o600)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InvalidDatabase(f"DB artifact is not a valid tar.gz: {exc}") from None
    missing = wanted - seen
    if missing:
        raise InvalidDatabase(f"DB artifact lacks {', '.join(sorted(missing))}")
    metadata = parse_metadata((staging / METADATA_FILE).read_bytes())
    check_bolt_file(staging / DB_FILE)
    fsync_dir(staging)
    return metadata


def _member_name(member: tarfile.TarInfo) -> str | None:
    """The extractable name of a tar member, None for the archive's root directory.

    Raises:
        InvalidDatabase: the member escapes the directory or is not a plain file/directory.
    """
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise InvalidDatabase(f"unsafe path in DB artifact: {member.name!r}")
    if member.isdir():
        return None
    if not member.isreg():
        raise InvalidDatabase(f"DB artifact member {member.name!r} is not a regular file")
    parts = [p for p in path.parts if p != "."]
    return "/".join(parts) or None


def _open_source(source: Path | bytes) -> IO[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    return Path(source).open("rb")


@contextlib.contextmanager
def _install_lock(cache_dir: Path) -> Iterator[None]:
    with open(cache_dir / ".install.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _switch_link(cache_dir: Path, final: Path) -> None:
    link = db_dir(cache_dir)
    if link.is_dir() and not link.is_symlink():
        # A DB Trivy downloaded itself (a real directory): adopt it as a version so the
        # link can take its name. The only non-atomic step, once per cache.
        os.rename(link, cache_dir / ("db." + os.urandom(8).hex()))
    temp_link = cache_dir / ("db.link-" + os.urandom(8).hex())
    os.symlink(final.name, temp_link)  # relative, so the cache directory can move
    os.replace(temp_link, link)
    fsync_dir(cache_dir)


def _prune_versions(cache_dir: Path, *, keep: set[str]) -> None:
    """Keep the current version and the newest other one; remove older ones."""
    versions = sorted((p for p in cache_dir.glob("db.*")
                       if p.is_dir() and not p.is_symlink() and not p.name.startswith(
                           ("db.tmp-", "db.link-"))),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    previous = [p for p in versions if p.name not in keep][:1]
    for path in versions:
        if path.name not in keep and path not in previous:
            shutil.rmtree(path, ignore_errors=True)


def _sweep_staging(cache_dir: Path) -> None:
    """Remove staging left by a crashed install (the install lock is held)."""
    for path in cache_dir.glob("db.tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in cache_dir.glob("db.link-*"):
        path.unlink(missing_ok=True)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(timezone.utc)
