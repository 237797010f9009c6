"""Quarantine a corrupt blob and make the registry stop claiming it, in one transaction.

The store holds the blob's row (or its key) locked while the file is moved, so a push that
claims the digest meanwhile waits and then publishes a fresh copy; a push that claimed it
since the bytes were hashed is left to replace them (``quarantine_blob_sync``). The move
itself re-checks that the stored file is still the one that was hashed: a blob re-pushed
meanwhile (and so now hashing correctly) is never moved. Removing the blob's repository
links and row makes ``HEAD`` answer 404, so clients push the layer again; manifests stay and
are restored by re-pushing them (``publish`` replaces whatever the destination held).
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.metadata.integrity import IntegrityStore
from registry.storage.base import BlobCheck
from registry.storage.base import BlobStore


@dataclass(frozen=True)
class Quarantined:
    path: str
    repositories: list[str]  # the repositories that held the blob ("account/name")


def quarantine_blob(metadata: IntegrityStore, blobs: BlobStore,
                    check: BlobCheck, *, now: float, checked_since: float) -> Quarantined | None:
    """Synchronous (call it off the event loop). ``checked_since``: when the pass that
    hashed ``check`` began. Returns where the bytes went, or None when the blob was replaced,
    removed or claimed by a push since (then nothing changed).

    Raises:
        StoreError: the metadata database failed (nothing changed).
    """
    forgotten = metadata.quarantine_blob_sync(
        str(check.digest), checked_since=checked_since,
        move=lambda: blobs.quarantine(check, now=now))
    return None if forgotten is None else Quarantined(forgotten.path, forgotten.repositories)
