"""The blob store a configuration names (``[storage] backend``): the one place that builds
one, for the server and every CLI command."""

from __future__ import annotations

from registry.config import Config
from registry.storage.base import BlobStore


def open_blob_store(config: Config, metadata=None) -> BlobStore:
    """The configured blob store (``config.storage.backend``; validated with the config).

    ``metadata`` (the metadata store) gives an S3 store its upload-session locks as leases
    every node sees; without it (a one-off CLI command) the locks are this process's.
    """
    storage = config.storage
    if storage.backend == "s3":
        from registry.storage.locks import LeaseLocks, ProcessLocks
        from registry.storage.s3 import S3BlobStore
        from registry.storage.s3_client import S3Settings

        settings = S3Settings(
            bucket=storage.bucket, endpoint_url=storage.endpoint_url,
            region=storage.region or config.region, prefix=storage.prefix,
            profile=storage.profile, credentials_file=storage.credentials_file,
            part_size=storage.part_size_bytes, presign_seconds=storage.presign_seconds)
        locks = LeaseLocks(metadata) if metadata is not None else ProcessLocks()
        return S3BlobStore(settings, locks=locks)
    from registry.storage.filesystem import FilesystemBlobStore

    return FilesystemBlobStore(config.data_dir)
