"""Online garbage collection.

One pass: (1) untagged manifests that nothing references, repeated until nothing more goes
(removing an index frees its children); (2) repository blob links that no manifest in the
repository uses; (3) blobs no repository links and no manifest is; (4) files under ``blobs/``
with no database row (a publish whose claim was collected, or a crash); (5) stale upload
sessions (skipping any a request holds right now: its lock is taken without waiting) and
what crashes leave under ``tmp/``.

Everything younger than the grace window stays, so a blob claimed for a push in progress is
never deleted. Candidates are read in keyset pages outside any write transaction; each page
is deleted in one short transaction that locks the rows and re-checks the rule
(``registry/metadata/collect.py``), so a write transaction never touches more than
``batch`` rows and pushes interleave with a collection of any size; a concurrent push either
rescues a candidate or waits for one batch. Blob files go inside the deleting transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, TypeVar

from registry.metadata.collect import CollectStore
from registry.metadata.errors import StoreBusyError
from registry.oci.digests import parse_digest
from registry.storage.base import BlobStore

log = logging.getLogger(__name__)

LEFTOVER_MIN_AGE = 3600.0  # seconds
BATCH = 500  # rows per deleting transaction: a few milliseconds of writer lock on SQLite
MAX_REST = 0.1  # seconds between two deleting transactions at most


@dataclass
class GCReport:
    dry_run: bool
    manifests: list[str] = field(default_factory=list)
    links: int = 0
    blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    orphan_files: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {"dryRun": self.dry_run, "manifestsDeleted": len(self.manifests),
                "linksDeleted": self.links, "blobsDeleted": len(self.blobs),
                "bytesFreed": self.bytes_freed, "orphanFilesDeleted": len(self.orphan_files),
                "uploadsDeleted": len(self.uploads)}


def collect_garbage(metadata: CollectStore, blobs: BlobStore, *,
                    grace_seconds: float, upload_max_age_seconds: float,
                    dry_run: bool = False, now: float | None = None,
                    batch: int = BATCH) -> GCReport:
    """Run one collection pass synchronously (call it off the event loop).

    Raises:
        StoreError: the metadata database failed (what was deleted so far stays deleted).
    """
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    report = GCReport(dry_run=dry_run)
    _manifests(metadata, cutoff, report, dry_run, batch)
    for page in _pages(lambda after: metadata.garbage_links_sync(cutoff, after=after,
                                                                 limit=batch), batch):
        gone = page if dry_run else _batch(
            lambda: metadata.delete_garbage_links_sync(page, cutoff))
        report.links += len(gone)
    for page in _pages(lambda after: metadata.garbage_blobs_sync(cutoff, after=after,
                                                                 limit=batch),
                       batch, key=lambda blob: blob.digest):
        gone = page if dry_run else _batch(lambda: metadata.delete_garbage_blobs_sync(
            [b.digest for b in page], cutoff, lambda d: blobs.delete(parse_digest(d))))
        report.blobs += [b.digest for b in gone]
        report.bytes_freed += sum(b.size for b in gone)
    _orphans(metadata, blobs, cutoff, report, dry_run, batch)
    report.uploads = sweep_uploads(blobs, max_age_seconds=upload_max_age_seconds, now=now,
                                   dry_run=dry_run)
    log.info("gc finished", extra=report.summary())
    return report


def sweep_uploads(blobs: BlobStore, *, max_age_seconds: float,
                  now: float | None = None, dry_run: bool = False) -> list[str]:
    """Remove upload sessions started more than ``max_age_seconds`` ago, and leftovers of
    crashes untouched for as long; return the session ids removed."""
    now = time.time() if now is None else now
    stale = [s.id for s in blobs.list_uploads() if s.started_at < now - max_age_seconds]
    if dry_run:
        return stale
    removed = [session_id for session_id in stale if blobs.discard_upload(session_id)]
    # Never younger than an hour, whatever the session expiry: a closing session sits in
    # tmp/ while its bytes are verified and fsynced, which takes a while for a huge blob.
    leftovers = blobs.sweep_leftovers(older_than=now - max(max_age_seconds, LEFTOVER_MIN_AGE))
    if leftovers:
        log.info("removed leftovers of interrupted uploads", extra={"count": len(leftovers)})
    return removed


T = TypeVar("T")


def _pages(read: Callable[[object], list[T]], size: int,
           key: Callable[[T], object] = lambda row: row) -> Iterator[list[T]]:
    """Keyset paging: ``read(after)`` gives the rows after the last one of the page before."""
    after = None
    while True:
        page = read(after)
        if page:
            yield page
        if len(page) < size:
            return
        after = key(page[-1])


def _batch(delete: Callable[[], list[T]]) -> list[T]:
    """One batch; a lock conflict with a push (PostgreSQL broke a deadlock) leaves the batch
    for the next collection instead of failing this one.

    Afterwards the collector rests as long as the batch took: SQLite has one writer lock,
    and other processes wait for it with a polling busy handler that a collector taking the
    lock back at once could starve; resting keeps at least half the writer's time for
    pushes."""
    started = time.monotonic()
    try:
        return delete()
    except StoreBusyError:
        log.warning("gc batch skipped: it conflicted with concurrent writes")
        return []
    finally:
        time.sleep(min(time.monotonic() - started, MAX_REST))


def _manifests(metadata: CollectStore, cutoff: float, report: GCReport, dry_run: bool,
               batch: int) -> None:
    while True:
        deleted = 0
        for page in _pages(lambda after: metadata.garbage_manifests_sync(
                cutoff, after=after, limit=batch), batch, key=lambda m: m.key):
            gone = page if dry_run else _batch(
                lambda: metadata.delete_garbage_manifests_sync(page, cutoff))
            report.manifests += [f"{m.repository}@{m.digest}" for m in gone]
            deleted += len(gone)
        if dry_run or not deleted:
            return  # children freed by a deletion only show up once it really happens


def _orphans(metadata: CollectStore, blobs: BlobStore, cutoff: float,
             report: GCReport, dry_run: bool, batch: int) -> None:
    """Files with no row, older than the grace window (a file younger may be a publish
    whose claim is committing right now; its row then protects it)."""
    old: list[str] = []

    def sweep(digests: Sequence[str]) -> None:
        unrecorded = metadata.unrecorded_blobs_sync(digests)
        if dry_run:
            report.orphan_files += unrecorded
        elif unrecorded:
            report.orphan_files += _batch(lambda: metadata.delete_orphan_files_sync(
                unrecorded, lambda d: blobs.delete(parse_digest(d))))

    for stored in blobs.iter_blobs():
        if stored.modified_at < cutoff:
            old.append(str(stored.digest))
        if len(old) >= batch:
            sweep(old)
            old = []
    sweep(old)
