"""Every filesystem path Berth writes, drawn once.

::

    <data>/
      metadata.db              SQLite metadata (WAL)
      blobs/
        <alg>/<2 hex>/<hex>    content-addressed blob (layers, configs, manifests)
      uploads/
        <session id>/
          info.json            repository, algorithm, start time (written once)
          data                 bytes received so far; the offset is its size
      tmp/                     staging for whole-object writes (manifests); same filesystem
                               as blobs/ so that rename is atomic

Nothing else in Berth concatenates storage paths: callers ask this module.
"""

from __future__ import annotations

import re
from pathlib import Path

_SESSION = re.compile(r"^[0-9a-f]{32}$")


def blob_path(root: Path, algorithm: str, hex_digest: str) -> Path:
    return root / "blobs" / algorithm / hex_digest[:2] / hex_digest


def blobs_root(root: Path) -> Path:
    return root / "blobs"


def uploads_root(root: Path) -> Path:
    return root / "uploads"


def is_session_id(session_id: str) -> bool:
    return bool(_SESSION.match(session_id))


def upload_dir(root: Path, session_id: str) -> Path:
    if not is_session_id(session_id):
        raise ValueError("not a session id")
    return root / "uploads" / session_id


def upload_data(root: Path, session_id: str) -> Path:
    return upload_dir(root, session_id) / "data"


def upload_info(root: Path, session_id: str) -> Path:
    return upload_dir(root, session_id) / "info.json"


def tmp_root(root: Path) -> Path:
    return root / "tmp"


def metadata_db(root: Path) -> Path:
    return root / "metadata.db"
