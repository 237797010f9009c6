"""Every filesystem path Berth writes, drawn once.

::

    <data>/
      metadata.db              SQLite metadata (WAL)
      blobs/
        <alg>/<2 hex>/<hex>    content-addressed blob (layers, configs, manifests); always
                               hashes to its name (written only by rename of verified bytes)
      uploads/
        <session id>/
          info.json            repository, algorithm, owner, start time (written once); also
                               the session's lock: every append/finish/cancel flocks it
          data                 bytes received so far; the offset is its size
      upload-index/            open sessions counted per key, for the session caps
        repository/<key>/<session id>    empty marker; <key> = sha256(repository)[:32]
        principal/<key>/<session id>     empty marker; <key> = sha256(principal ARN)[:32]
      tmp/                     same filesystem as blobs/ so that rename is atomic
        <32 hex>               a staged whole object (manifest) waiting to be published
        closing-<id>-<8 hex>/  a session taken out of uploads/ by its closing PUT: no
                               request can name it, so its bytes cannot change any more
      quarantine/
        <alg>/<hex>.<unix ts>  a blob file that did not hash to its name (fsck/scrub)

Nothing else in Berth concatenates storage paths: callers ask this module.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path

_SESSION = re.compile(r"[0-9a-f]{32}")
INDEX_SCOPES = ("repository", "principal")


def blob_path(root: Path, algorithm: str, hex_digest: str) -> Path:
    return root / "blobs" / algorithm / hex_digest[:2] / hex_digest


def blobs_root(root: Path) -> Path:
    return root / "blobs"


def uploads_root(root: Path) -> Path:
    return root / "uploads"


def is_session_id(session_id: str) -> bool:
    return bool(_SESSION.fullmatch(session_id))


def upload_dir(root: Path, session_id: str) -> Path:
    if not is_session_id(session_id):
        raise ValueError("not a session id")
    return root / "uploads" / session_id


def upload_data(root: Path, session_id: str) -> Path:
    return upload_dir(root, session_id) / "data"


def upload_info(root: Path, session_id: str) -> Path:
    return upload_dir(root, session_id) / "info.json"


def index_dir(root: Path, scope: str, value: str) -> Path:
    """The marker directory counting the open sessions of one repository or principal."""
    if scope not in INDEX_SCOPES:
        raise ValueError("unknown index scope")
    key = hashlib.sha256(value.encode()).hexdigest()[:32]
    return root / "upload-index" / scope / key


def tmp_root(root: Path) -> Path:
    return root / "tmp"


def closing_dir(root: Path, session_id: str) -> Path:
    """A fresh private name for a session being closed (random: never reused, never guessed)."""
    if not is_session_id(session_id):
        raise ValueError("not a session id")
    return root / "tmp" / f"closing-{session_id}-{secrets.token_hex(4)}"


def quarantine_root(root: Path) -> Path:
    return root / "quarantine"


def quarantine_path(root: Path, algorithm: str, hex_digest: str, timestamp: int,
                    attempt: int = 0) -> Path:
    suffix = f"{timestamp}" if attempt == 0 else f"{timestamp}.{attempt}"
    return root / "quarantine" / algorithm / f"{hex_digest}.{suffix}"


def metadata_db(root: Path) -> Path:
    return root / "metadata.db"
