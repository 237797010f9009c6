"""Image scan results and scan requests.

One row per (repository, manifest) in ``scan_results``; findings are one JSON document per
image (scanning.md §11.4): an image's findings are always read and paginated together, never
joined.

A scan's life: a request (a push with scan-on-push, StartImageScan, a new vulnerability DB)
marks the row IN_PROGRESS and queues a ``scan.image`` job in the same transaction
(``RequestScan``, applied here); the job's ``finish_scan`` moves it to a final status.
Concurrency (PostgreSQL, READ COMMITTED) is decided by single conditional statements, whose
row lock serialises racing requests:

- a request is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE status <> 'IN_PROGRESS'``:
  of two racing requests for an idle image exactly one changes the row and queues a job; the
  other (it waited for the first's row lock, then saw IN_PROGRESS) joins the scan in flight;
- ``finish_scan`` is an ``UPDATE ... WHERE status = 'IN_PROGRESS'``: a job that runs twice
  (lease lost) records its outcome, and its ``image.scanned`` event, once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as lite

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.eventlog import append_events
from registry.metadata.jobs import insert_job
from registry.metadata.models import Event
from registry.metadata.writes import RequestScan, applier, apply

IN_PROGRESS = "IN_PROGRESS"
FINAL_STATUSES = ("COMPLETE", "FAILED", "UNSUPPORTED_IMAGE")
# A scan IN_PROGRESS for this long lost its job (the job failed for good, or was purged): a
# new request starts it again instead of joining it forever. Far above a scan job's lifetime
# (a few attempts of at most the scanner timeout, with capped backoff).
STALE_REQUEST_SECONDS = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class ScanRecord:
    repository_id: int
    manifest_digest: str
    status: str
    description: str
    scan_type: str
    scanner: str | None
    scanner_version: str | None
    db_updated_at: float | None
    requested_at: float
    completed_at: float | None
    severity_counts: dict[str, int]
    findings: list[dict[str, Any]]
    os_family: str | None
    os_name: str | None


class ParentScan(NamedTuple):
    """A manifest that references a child, with its scan's status (None: never scanned)."""

    digest: str
    status: str | None
    severity_counts: dict[str, int]


class ScanStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""

    async def get_scan(self, repository_id: int, digest: str) -> ScanRecord | None:
        """The scan of an image, findings included; None when it was never requested."""

    async def scan_summaries(self, repository_id: int,
                             digests: Sequence[str]) -> dict[str, ScanRecord]:
        """The scans of these images (a DescribeImages page) by manifest digest, without
        findings (``findings`` is ``[]``); one query, bounded by the page."""

    async def start_scan(self, request: RequestScan, *, min_interval: float | None) -> bool:
        """StartImageScan: apply ``request`` in one transaction, unless the previous request
        of this image is younger than ``min_interval`` seconds (ECR: one basic scan per
        image per 24 hours).

        Returns: False when refused by ``min_interval`` (nothing changed); True when the
            scan is requested or already in progress (``min_interval`` None).
        Raises:
            StoreError: the database failed (nothing changed).
        """

    async def finish_scan(self, repository_id: int, digest: str, *, status: str,
                          description: str, scanner: str | None, scanner_version: str | None,
                          db_updated_at: float | None, severity_counts: dict[str, int],
                          findings: list[dict[str, Any]], os_family: str | None,
                          os_name: str | None, events: Sequence[Event] = ()) -> bool:
        """Record a scan's outcome and ``events`` in one transaction, if the scan is still
        IN_PROGRESS.

        Returns: False when there is no scan in progress for the image (another run of the
            same job recorded it, or the repository was deleted): nothing was written.
        Raises:
            StoreError: the database failed (nothing changed).
        """

    async def parent_scans(self, repository_id: int, child_digest: str, *,
                           kind: str) -> list[ParentScan]:
        """Every manifest of the repository that references ``child_digest`` — a blob (a
        layer or config, ``kind="blob"``) or a manifest (an index's child,
        ``kind="manifest"``) — with its scan, in digest order."""

    async def scans_older_than_db(self, db_updated_at: float) -> list[tuple[int, str]]:
        """(repository id, manifest digest) of finished scans made with a vulnerability DB
        older than ``db_updated_at`` (or an unknown one), for continuous rescans."""

    async def announce_scanner_db(self, *, account: str, setting: str, digest: str,
                                  updated_at: float, rescans: Sequence[RequestScan]) -> bool:
        """Record ``digest`` (a vulnerability DB built at ``updated_at``) as ``account``'s
        registry setting ``setting`` and apply ``rescans`` in the same transaction — unless
        that setting already holds this digest or a DB at least as new. Exactly one of any
        number of racing callers (nodes) announces a given DB.

        Returns: True when this call announced (and queued the rescans).
        Raises:
            StoreError: the database failed (nothing changed).
        """


def _insert(d: str):
    return (pg.insert if d == "postgresql" else lite.insert)(t.scan_results)


_s = t.scan_results
_COLUMNS = (_s.c.repository_id, _s.c.manifest_digest, _s.c.status, _s.c.description,
            _s.c.scan_type, _s.c.scanner, _s.c.scanner_version, _s.c.db_updated_at,
            _s.c.requested_at, _s.c.completed_at, _s.c.severity_counts)
_KEY = sa.and_(_s.c.repository_id == sa.bindparam("repo"),
               _s.c.manifest_digest == sa.bindparam("digest"))


def _record(row: Sequence[Any]) -> ScanRecord:
    values = list(row)
    values[10] = json.loads(values[10] or "{}")
    values[11] = json.loads(values[11] or "[]")
    return ScanRecord(*values)


@query
def _get(d):
    return sa.select(*_COLUMNS, _s.c.findings, _s.c.os_family, _s.c.os_name).where(_KEY)


@query
def _summaries(d):
    return (sa.select(*_COLUMNS, sa.null(), _s.c.os_family, _s.c.os_name)
            .where(_s.c.repository_id == sa.bindparam("repo"),
                   _s.c.manifest_digest.in_(sa.bindparam("digests", expanding=True))))


@query
def _requested_at_locked(d):
    return sa.select(_s.c.requested_at).where(_KEY).with_for_update()


@query
def _request(d):
    ins = _insert(d).values(
        repository_id=sa.bindparam("repo"), manifest_digest=sa.bindparam("digest"),
        status=IN_PROGRESS, description="", scan_type=sa.bindparam("scan_type"),
        requested_at=sa.bindparam("now"))
    return ins.on_conflict_do_update(
        index_elements=[_s.c.repository_id, _s.c.manifest_digest],
        set_={"status": IN_PROGRESS, "description": "", "scan_type": ins.excluded.scan_type,
              "requested_at": ins.excluded.requested_at},
        where=sa.or_(_s.c.status != IN_PROGRESS,
                     _s.c.requested_at < sa.bindparam("stale_before")),
    ).returning(_s.c.requested_at)


@query
def _finish(d):
    return sa.update(_s).where(_KEY, _s.c.status == IN_PROGRESS).values(
        status=sa.bindparam("status"), description=sa.bindparam("description"),
        scanner=sa.bindparam("scanner"), scanner_version=sa.bindparam("scanner_version"),
        db_updated_at=sa.bindparam("db_updated_at"), completed_at=sa.bindparam("now"),
        severity_counts=sa.bindparam("counts"), findings=sa.bindparam("findings"),
        os_family=sa.bindparam("os_family"), os_name=sa.bindparam("os_name"))


@query
def _parents(d):
    r = t.manifest_references
    return (sa.select(r.c.manifest_digest, _s.c.status, _s.c.severity_counts)
            .select_from(r.outerjoin(_s, sa.and_(_s.c.repository_id == r.c.repository_id,
                                                 _s.c.manifest_digest == r.c.manifest_digest)))
            .where(r.c.repository_id == sa.bindparam("repo"),
                   r.c.child_digest == sa.bindparam("child"),
                   r.c.child_kind == sa.bindparam("kind"))
            .order_by(r.c.manifest_digest))


@query
def _older_than_db(d):
    return (sa.select(_s.c.repository_id, _s.c.manifest_digest)
            .where(_s.c.status.in_(FINAL_STATUSES),
                   sa.or_(_s.c.db_updated_at.is_(None),
                          _s.c.db_updated_at < sa.bindparam("db_updated_at")))
            .order_by(_s.c.repository_id, _s.c.manifest_digest))


@query
def _announce(d):
    rs = t.registry_settings
    ins = (pg.insert if d == "postgresql" else lite.insert)(rs).values(
        account=sa.bindparam("account"), name=sa.bindparam("name"),
        value=sa.bindparam("value"), updated_at=sa.bindparam("updated_at"))
    # One statement decides: it inserts the setting, or locks the existing row and changes
    # it only for another, newer DB. A racing node waits for the row lock, then finds the
    # value it would write and changes nothing (RETURNING gives no row).
    return ins.on_conflict_do_update(
        index_elements=[rs.c.account, rs.c.name],
        set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
        where=sa.and_(rs.c.value != ins.excluded.value,
                      rs.c.updated_at < ins.excluded.updated_at),
    ).returning(rs.c.name)


@applier(RequestScan)
def request_scan(conn: Conn, write: RequestScan, now: float) -> int | None:
    """Mark the image's scan IN_PROGRESS and queue ``write.job``, inside the caller's
    transaction; a scan already in progress (requested less than
    ``STALE_REQUEST_SECONDS`` ago) is joined instead: nothing changes.

    The job's idempotency key, unless the caller gave one, names this request
    (``scan:<repository id>:<digest>:<requested at>``): applying the same request twice
    never yields two jobs, while a rescan after the scan finished is a new request.

    Returns: the job id, or None when joined (or the key already had a job).
    """
    requested_at = conn.scalar(_request, repo=write.repository_id, digest=write.digest,
                               scan_type=write.scan_type, now=now,
                               stale_before=now - STALE_REQUEST_SECONDS)
    if requested_at is None:
        return None
    job = write.job
    if job.idempotency_key is None:
        job = dataclasses.replace(job, idempotency_key=(
            f"scan:{write.repository_id}:{write.digest}:{requested_at:.6f}"))
    return insert_job(conn, job, now)


class ScanQueries:
    """``ScanStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def get_scan(self, repository_id: int, digest: str) -> ScanRecord | None:
        row = await self.db.read(lambda c: c.one(_get, repo=repository_id, digest=digest))
        return None if row is None else _record(row)

    async def scan_summaries(self, repository_id: int,
                             digests: Sequence[str]) -> dict[str, ScanRecord]:
        if not digests:
            return {}
        rows = await self.db.read(lambda c: c.all(_summaries, repo=repository_id,
                                                  digests=sorted(set(digests))))
        return {r[1]: _record(r) for r in rows}

    async def start_scan(self, request: RequestScan, *, min_interval: float | None) -> bool:
        def start(conn: Conn) -> bool:
            now = time.time()
            last = conn.scalar(_requested_at_locked, repo=request.repository_id,
                               digest=request.digest)
            if last is not None and min_interval is not None and now - last < min_interval:
                return False
            queued = apply(conn, [request], now=now)[0]
            # Joined a scan in flight: refused under an interval only when that scan was
            # requested by a request racing ours (no row when we looked), i.e. just now.
            return queued is not None or min_interval is None or last is not None

        return await self.db.write(start)

    async def finish_scan(self, repository_id: int, digest: str, *, status: str,
                          description: str, scanner: str | None, scanner_version: str | None,
                          db_updated_at: float | None, severity_counts: dict[str, int],
                          findings: list[dict[str, Any]], os_family: str | None,
                          os_name: str | None, events: Sequence[Event] = ()) -> bool:
        counts, found = json.dumps(severity_counts), json.dumps(findings)

        def finish(conn: Conn) -> bool:
            now = time.time()
            if not conn.run(_finish, repo=repository_id, digest=digest, status=status,
                            description=description, scanner=scanner,
                            scanner_version=scanner_version, db_updated_at=db_updated_at,
                            now=now, counts=counts, findings=found, os_family=os_family,
                            os_name=os_name):
                return False
            append_events(conn, events, now=now)
            return True

        return await self.db.write(finish)

    async def parent_scans(self, repository_id: int, child_digest: str, *,
                           kind: str) -> list[ParentScan]:
        rows = await self.db.read(lambda c: c.all(_parents, repo=repository_id,
                                                  child=child_digest, kind=kind))
        return [ParentScan(digest, status, json.loads(counts or "{}"))
                for digest, status, counts in rows]

    async def scans_older_than_db(self, db_updated_at: float) -> list[tuple[int, str]]:
        rows = await self.db.read(lambda c: c.all(_older_than_db, db_updated_at=db_updated_at))
        return [(r[0], r[1]) for r in rows]

    async def announce_scanner_db(self, *, account: str, setting: str, digest: str,
                                  updated_at: float, rescans: Sequence[RequestScan]) -> bool:
        def announce(conn: Conn) -> bool:
            if conn.scalar(_announce, account=account, name=setting, value=digest,
                           updated_at=updated_at) is None:
                return False
            apply(conn, rescans, now=time.time())
            return True

        return await self.db.write(announce)
