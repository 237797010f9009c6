"""Quarantine a corrupt blob and make the registry stop claiming it, in one transaction.

The transaction is the metadata write transaction, and every ``publish`` runs inside one too,
so no publish can slip between the check that the stored file is still the corrupt one that
was hashed and its move to ``quarantine/``: a blob that a client re-pushed meanwhile (and so
now hashes correctly) is never moved. Removing the blob's repository links and row makes
``HEAD`` answer 404, so clients push the layer again; manifests stay and are restored by
re-pushing them (``publish`` replaces whatever the destination held).
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.metadata.integrity import blob_users, forget_blob
from registry.metadata.store import SQLiteMetadataStore
from registry.storage.base import BlobCheck
from registry.storage.filesystem import FilesystemBlobStore


@dataclass(frozen=True)
class Quarantined:
    path: str
    repositories: list[str]  # the repositories that held the blob ("account/name")


class _Replaced(Exception):
    """The stored file is no longer the corrupt one: undo the row changes."""


def quarantine_blob(metadata: SQLiteMetadataStore, blobs: FilesystemBlobStore,
                    check: BlobCheck, *, now: float) -> Quarantined | None:
    """Synchronous (call it off the event loop). Returns where the bytes went, or None when
    the blob was replaced or removed since ``check`` (then nothing changed)."""
    def run(conn) -> Quarantined:
        users = blob_users(conn, str(check.digest))
        forget_blob(conn, str(check.digest))
        moved = blobs.quarantine(check, now=now)
        if moved is None:
            raise _Replaced
        return Quarantined(moved, users)

    try:
        return metadata.transaction_sync(run)
    except _Replaced:
        return None
