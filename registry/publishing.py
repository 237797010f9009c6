"""Making verified bytes visible: claim, publish, link (DESIGN invariants 1 and 2).

The bytes of a blob (or manifest) are made durable and renamed into place BEFORE the
metadata transaction that links them, never inside it, so no database transaction waits on
the file system:

    1. ``metadata.claim_blob``: a short transaction that records the blob with a fresh GC
       grace window, so a collection running now cannot delete the bytes we are about to
       publish (GC re-checks the grace window under a row lock before deleting).
    2. ``blobs.publish``: rename into place and fsync the directory, on a worker thread.
    3. ``metadata.link_blob`` (here) or ``metadata.put_manifest`` (registry/images.py): the
       transaction that makes the bytes reachable from a repository.

A failure before step 2 discards the staged bytes; after it, the published but unlinked
blob is garbage that GC removes once its grace window passes (it is not readable through any
repository meanwhile: reads are repository-scoped).
"""

from __future__ import annotations

import asyncio

from registry.storage.base import BlobStore, StagedBlob


def _publish_or_discard(blobs: BlobStore, staged: StagedBlob) -> None:
    try:
        blobs.publish(staged)
    except BaseException:
        blobs.discard(staged)
        raise


async def publish(metadata, blobs: BlobStore, staged: StagedBlob) -> None:
    """Steps 1 and 2: claim the blob, then publish its bytes (outside any transaction).

    Raises:
        StoreError: the claim failed (the staged bytes were discarded).
        OSError: publishing failed (the staged bytes were discarded).
    """
    try:
        await metadata.claim_blob(str(staged.digest), staged.size)
    except BaseException:
        blobs.discard(staged)
        raise
    # A thread, not the event loop: a rename plus a directory fsync can take milliseconds.
    # If the request is cancelled meanwhile the thread still finishes; the claimed blob is
    # then left for GC.
    await asyncio.to_thread(_publish_or_discard, blobs, staged)


async def store_blob(metadata, blobs: BlobStore, repository_id: int, staged: StagedBlob) -> None:
    """Claim, publish and link a staged blob into a repository.

    Raises:
        StoreError, OSError: see ``publish``; a failed link leaves the blob to GC.
    """
    await publish(metadata, blobs, staged)
    await metadata.link_blob(repository_id, str(staged.digest), staged.size)
