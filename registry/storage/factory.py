"""The blob store a configuration names (``[storage] backend``): the one place that builds
one, for the server and every CLI command."""

from __future__ import annotations

from registry.config import Config
from registry.storage.base import BlobStore


def open_blob_store(config: Config) -> BlobStore:
    """The configured blob store (``config.storage.backend``; validated with the config)."""
    from registry.storage.filesystem import FilesystemBlobStore

    return FilesystemBlobStore(config.data_dir)
