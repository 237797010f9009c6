"""The storage tree as drawn in registry/storage/paths.py (STYLE 3: one table pins it)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from registry.storage import paths

ROOT = Path("/data")
HEX = "ab" + "0" * 62
SESSION = "0123456789abcdef" * 2
KEY = hashlib.sha256(b"000000000000/lib/app").hexdigest()[:32]

TABLE = [
    (paths.blob_path(ROOT, "sha256", HEX), f"/data/blobs/sha256/ab/{HEX}"),
    (paths.upload_dir(ROOT, SESSION), f"/data/uploads/{SESSION}"),
    (paths.upload_data(ROOT, SESSION), f"/data/uploads/{SESSION}/data"),
    (paths.upload_info(ROOT, SESSION), f"/data/uploads/{SESSION}/info.json"),
    (paths.index_dir(ROOT, "repository", "000000000000/lib/app"),
     f"/data/upload-index/repository/{KEY}"),
    (paths.quarantine_path(ROOT, "sha256", HEX, 1700000000),
     f"/data/quarantine/sha256/{HEX}.1700000000"),
    (paths.quarantine_path(ROOT, "sha256", HEX, 1700000000, 2),
     f"/data/quarantine/sha256/{HEX}.1700000000.2"),
    (paths.tmp_root(ROOT), "/data/tmp"),
    (paths.metadata_db(ROOT), "/data/metadata.db"),
]


@pytest.mark.parametrize("path,expected", TABLE, ids=[t[1] for t in TABLE])
def test_paths(path, expected):
    assert str(path) == expected


def test_closing_names_are_private_and_fresh():
    first, second = paths.closing_dir(ROOT, SESSION), paths.closing_dir(ROOT, SESSION)
    assert re.fullmatch(rf"/data/tmp/closing-{SESSION}-[0-9a-f]{{8}}", str(first))
    assert first != second


@pytest.mark.parametrize("bad", ["../../etc", SESSION + "\n", SESSION.upper(), "", "0" * 31])
def test_session_ids_are_matched_in_full(bad):
    assert not paths.is_session_id(bad)
    with pytest.raises(ValueError):
        paths.upload_dir(ROOT, bad)
