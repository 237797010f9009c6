"""Image scan results and scan requests."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class ScanStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class ScanQueries:
    """``ScanStore`` on a ``Database`` (``self.db``)."""

    db: Database


# Transitional (core area, until the scans area owns it): scan on push as a typed write,
# with the legacy semantics (mark IN_PROGRESS, queue the job). The scans area replaces this.
import sqlalchemy as sa  # noqa: E402

from registry.metadata import tables as t  # noqa: E402
from registry.metadata.database import Conn, query  # noqa: E402
from registry.metadata.jobs import insert_job  # noqa: E402
from registry.metadata.rows import insert  # noqa: E402
from registry.metadata.writes import RequestScan, applier  # noqa: E402


@query
def _mark_requested(d):
    s = t.scan_results
    stmt = insert(d, s).values(
        repository_id=sa.bindparam("repo"), manifest_digest=sa.bindparam("digest"),
        status="IN_PROGRESS", description="", scan_type=sa.bindparam("scan_type"),
        requested_at=sa.bindparam("now"))
    return stmt.on_conflict_do_update(
        index_elements=["repository_id", "manifest_digest"],
        set_={"status": "IN_PROGRESS", "description": "", "scan_type": stmt.excluded.scan_type,
              "requested_at": stmt.excluded.requested_at})


@applier(RequestScan)
def request_scan(conn: Conn, write: RequestScan, now: float) -> int | None:
    """Mark the image's scan IN_PROGRESS and queue its job; return the job id."""
    conn.run(_mark_requested, repo=write.repository_id, digest=write.digest,
             scan_type=write.scan_type, now=now)
    return insert_job(conn, write.job, now)
