"""Online garbage collection.

One pass: (1) untagged manifests that nothing references, repeated until nothing more goes
(removing an index frees its children); (2) repository blob links that no manifest in the
repository uses; (3) blobs no repository links and no manifest is; (4) files under ``blobs/``
with no database row (left by a crash between rename and commit); (5) stale upload sessions
(skipping any a request holds right now: its lock is taken without waiting) and what crashes
leave under ``tmp/``.
Everything younger than the grace window stays, so a blob uploaded for a manifest that is not
pushed yet is never deleted. Deletions re-check their condition inside their own transaction
and remove the file inside it, so a concurrent push either rescues a candidate or
re-uploads it; pushes never wait for a collection.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from registry.metadata import collect
from registry.metadata.store import SQLiteMetadataStore
from registry.oci.digests import parse_digest
from registry.storage.filesystem import FilesystemBlobStore

log = logging.getLogger(__name__)

LEFTOVER_MIN_AGE = 3600.0  # seconds


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


def collect_garbage(metadata: SQLiteMetadataStore, blobs: FilesystemBlobStore, *,
                    grace_seconds: float, upload_max_age_seconds: float,
                    dry_run: bool = False, now: float | None = None) -> GCReport:
    """Run one collection pass synchronously (call it off the event loop)."""
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    report = GCReport(dry_run=dry_run)
    run = metadata.transaction_sync
    _manifests(run, cutoff, report, dry_run)
    for repository_id, digest in run(lambda c: collect.garbage_links(c, cutoff)):
        if dry_run or run(lambda c: collect.delete_garbage_link(c, repository_id, digest, cutoff)):
            report.links += 1
    for digest, size in run(lambda c: collect.garbage_blobs(c, cutoff)):
        if dry_run:
            deleted = True
        else:
            deleted = run(lambda c: _delete_blob(c, blobs, digest, cutoff))
        if deleted:
            report.blobs.append(digest)
            report.bytes_freed += size
    _orphans(run, blobs, cutoff, report, dry_run)
    report.uploads = sweep_uploads(blobs, max_age_seconds=upload_max_age_seconds, now=now,
                                   dry_run=dry_run)
    log.info("gc finished", extra=report.summary())
    return report


def sweep_uploads(blobs: FilesystemBlobStore, *, max_age_seconds: float,
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


def _manifests(run, cutoff: float, report: GCReport, dry_run: bool) -> None:
    seen: set[tuple[int, str]] = set()
    while True:
        candidates = [c for c in run(lambda conn: collect.garbage_manifests(conn, cutoff))
                      if (c[0], c[2]) not in seen]
        if not candidates:
            return
        for repository_id, _account, ref in candidates:
            seen.add((repository_id, ref))
            digest = ref.rsplit("@", 1)[1]
            if dry_run or run(lambda c: collect.delete_garbage_manifest(
                    c, repository_id, digest, cutoff)):
                report.manifests.append(ref)
        if dry_run:
            return  # children freed by a deletion only show up once it really happens


def _delete_blob(conn, blobs: FilesystemBlobStore, digest: str, cutoff: float) -> bool:
    if not collect.delete_garbage_blob(conn, digest, cutoff):
        return False
    # Inside the transaction: a concurrent upload of the same digest waits for our commit
    # and then publishes its own copy, so it can never lose its file to us.
    blobs.delete(parse_digest(digest))
    return True


def _orphans(run, blobs: FilesystemBlobStore, cutoff: float, report: GCReport,
             dry_run: bool) -> None:
    for stored in list(blobs.iter_blobs()):
        if stored.modified_at >= cutoff:
            continue
        digest = str(stored.digest)

        def sweep(conn) -> bool:
            if collect.blob_recorded(conn, digest):
                return False
            if not dry_run:
                blobs.delete(stored.digest)
            return True

        if run(sweep):
            report.orphan_files.append(digest)
