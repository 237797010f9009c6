"""Blob store backends for the storage contract suite.

A backend makes stores that share one storage (``new_store``: another worker process or
node), and can damage a stored blob behind the store's back (``tamper``) for the integrity
cases. Every backend in ``BACKENDS`` runs every contract test; S3 runs on the session's Ceph RGW
(tests/support/ceph.py) with a bucket per test.
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


class S3Backend:
    """Stores on one bucket of the session's Ceph RGW, each with its own session locks on
    one shared metadata database (leases): several nodes, as deployed."""

    name = "s3"

    def __init__(self, rgw, bucket: str, tmp_path: Path) -> None:
        from registry.metadata.store import SQLiteMetadataStore
        from registry.storage.s3_client import S3Settings

        self.settings = S3Settings(bucket=bucket, endpoint_url=rgw.endpoint_url,
                                   region=rgw.region, access_key=rgw.access_key,
                                   secret_key=rgw.secret_key, prefix="berth/",
                                   part_size=5 * 1024 * 1024)
        self.metadata = SQLiteMetadataStore(tmp_path / "leases.db")
        self.client = rgw.client()

    def new_store(self):
        from registry.storage.locks import LeaseLocks
        from registry.storage.s3 import S3BlobStore

        return S3BlobStore(self.settings, locks=LeaseLocks(self.metadata))

    def tamper(self, digest: Digest, data: bytes) -> None:
        self.client.put_object(Bucket=self.settings.bucket, Body=data,
                               Key=f"berth/blobs/{digest.algorithm}/{digest.hex}")


BACKENDS = ["filesystem", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    if request.param == "filesystem":
        return FilesystemBackend(tmp_path / "data")
    return S3Backend(request.getfixturevalue("rgw"), request.getfixturevalue("s3_bucket"),
                     tmp_path)


@pytest.fixture
def store(backend):
    return backend.new_store()
