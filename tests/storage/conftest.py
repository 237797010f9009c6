"""Blob store backends for the storage contract suite.

A backend makes stores that share one storage (``new_store``: another worker process or
node), and can damage a stored blob behind the store's back (``tamper``) for the integrity
cases. Every backend in ``BACKENDS`` runs every contract test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.oci.digests import Digest
from registry.storage.filesystem import FilesystemBlobStore


class FilesystemBackend:
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_store(self) -> FilesystemBlobStore:
        return FilesystemBlobStore(self.root)

    def tamper(self, digest: Digest, data: bytes) -> None:
        # Rewritten in place: the same file (inode), other bytes.
        with open(FilesystemBlobStore(self.root).local_path(digest), "r+b") as f:
            f.truncate(0)
            f.write(data)


BACKENDS = {"filesystem": lambda tmp_path: FilesystemBackend(tmp_path / "data")}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path):
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def store(backend):
    return backend.new_store()
