"""Issue 10's seam: nothing outside registry/storage/ knows where or how blob bytes are kept.

Readers open blobs, ask for download URLs, or have the store materialise a file
(registry/storage/base.py); a module elsewhere that builds a blob path or picks a concrete
store works only on one backend.
"""

from __future__ import annotations

import re
import pytest

from tests.unit.sources import ROOT, sources_outside

STORAGE = ROOT / "registry" / "storage"

FORBIDDEN = [
    ("a blob path", re.compile(r"\blocal_path\(|\bblob_path\(|\bblobs_root\(")),
    ("the store's path layout", re.compile(r"registry\.storage\.paths|storage import paths")),
    ("a concrete blob store", re.compile(r"registry\.storage\.(filesystem|s3)\b|"
                                         r"\b(Filesystem|S3)BlobStore\b")),
]


@pytest.mark.parametrize("path", sources_outside(STORAGE), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_blob_paths_outside_the_storage_package(path):
    text = path.read_text()
    found = [what for what, pattern in FORBIDDEN if pattern.search(text)]
    assert not found, (f"{path.relative_to(ROOT)} uses {', '.join(found)}: go through the "
                       "BlobStore protocol (registry/storage/base.py)")
