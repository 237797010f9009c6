"""Durable jobs with leases, and named leases, on the database's clock.

Jobs move along the state machine of ``registry.events`` (``transition``); every UPDATE here
only leaves the states that table allows for its action, and every outcome (complete, retry,
fail, release, extend) is fenced on (lease owner, attempts): a worker whose lease expired and
was taken over changes nothing.

Claims: the ready rows are selected ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
claimers on many nodes take disjoint jobs without waiting for each other; on SQLite
``BEGIN IMMEDIATE`` serialises the claim (``with_for_update`` compiles to nothing there).

Time: leases and due times are compared with the database clock (``dbclock.db_time``); every
method takes ``now`` only so tests can move time, production leaves it None. A new job is due
at the earlier of the writer's clock and the database's, so a node whose clock runs ahead
never hides a job from the others.

Ids are never reused (AUTOINCREMENT on SQLite, an identity on PostgreSQL): the webhook
delivery log keeps job ids after the jobs are purged. Inserting a job notifies
``JOBS_CHANNEL`` at commit so idle workers wake (``Database.wait``).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from registry.events import Job, JobState, transition, transitions_from
from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, Query, query
from registry.metadata.dbclock import db_time, earliest
from registry.metadata.nodes import NodeQueries, NodeStore
from registry.metadata.writes import NewJob, applier

JOBS_CHANNEL = "berth_jobs"

_J = t.jobs
_COLUMNS = (_J.c.id, _J.c.kind, _J.c.payload, _J.c.priority, _J.c.state, _J.c.created_at,
            _J.c.available_at, _J.c.attempts, _J.c.lease_owner, _J.c.lease_until, _J.c.done_at,
            _J.c.last_error, _J.c.source_event, _J.c.idempotency_key)


def _insert(d: str):
    return pg.insert if d == "postgresql" else sqlite.insert


def job_row(r: Sequence[Any], lease_seconds: float = 0.0) -> Job:
    return Job(id=r[0], kind=r[1], payload=json.loads(r[2]), priority=r[3],
               state=JobState(r[4]), created_at=r[5], available_at=r[6], attempts=r[7],
               lease_owner=r[8], lease_until=r[9], done_at=r[10], last_error=r[11],
               source_event=r[12], idempotency_key=r[13], lease_seconds=lease_seconds)


class JobStore(NodeStore, Protocol):
    """The part of ``MetadataStore`` this module implements. ``now`` arguments exist for
    tests (virtual time); None means the database clock."""

    async def enqueue_job(self, job: NewJob, *, now: float | None = None) -> int | None:
        """Queue ``job`` in its own transaction.

        Returns: its id, or None when a job of this kind with this idempotency key exists.
        Raises: TypeError (payload not JSON-serialisable), StoreError.
        """

    async def has_ready_jobs(self, kinds: Sequence[str], *, now: float | None = None) -> bool:
        """A read: is a job of ``kinds`` due (queued, or with an expired lease)?"""

    async def claim_jobs(self, kinds: Sequence[str], owner: str, *, lease_seconds: float,
                         limit: int, now: float | None = None) -> list[Job]:
        """Lease up to ``limit`` ready jobs of ``kinds`` to ``owner`` (a node id): highest
        priority first, then the longest due, then the oldest. Raises: StoreError."""

    async def settle_job(self, job: Job, action: str, *, error: str | None = None,
                         delay: float = 0.0, lease_seconds: float = 0.0,
                         now: float | None = None) -> bool:
        """Move a job ``claim_jobs`` returned: "complete", "retry" (due ``delay`` seconds
        from now, keeping ``error``), "fail" (keeping ``error``), "release" (due now, the
        attempt not counted), "extend" (renew the lease for ``lease_seconds``).

        Returns: False when this claim no longer holds the lease (nothing changed).
        Raises: ValueError (unknown action), StoreError.
        """

    async def get_job(self, job_id: int) -> Job | None: ...

    async def purge_jobs(self, *, succeeded_before: float, failed_before: float) -> int:
        """Delete jobs that succeeded before ``succeeded_before`` or failed before
        ``failed_before``; return how many."""

    async def wait_for_jobs(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a job insert anywhere; True if one was signalled."""

    async def acquire_lease(self, name: str, owner: str, *, ttl: float,
                            now: float | None = None) -> bool:
        """Take or renew the named lease (one runner of a maintenance task across nodes)
        for ``ttl`` seconds of database time; False when another owner holds it."""

    def acquire_lease_sync(self, name: str, owner: str, *, ttl: float) -> bool:
        """``acquire_lease`` for threads (and short synchronous paths)."""

    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (else nothing changes)."""

    def release_lease_sync(self, name: str, owner: str) -> None:
        """``release_lease`` for threads."""


# -- queries ----------------------------------------------------------------------------------

@query
def _insert_job(d):
    stmt = _insert(d)(_J).values(
        kind=sa.bindparam("kind"), payload=sa.bindparam("payload"),
        priority=sa.bindparam("priority"), state=JobState.QUEUED.value,
        created_at=db_time("now"),
        available_at=sa.func.coalesce(sa.bindparam("available_at", type_=_J.c.available_at.type),
                                      earliest(d, db_time("now"), db_time(None))),
        source_event=sa.bindparam("source_event"),
        idempotency_key=sa.bindparam("idempotency_key"))
    return stmt.on_conflict_do_nothing(index_elements=["kind", "idempotency_key"]) \
        .returning(_J.c.id)


def _ready(now: str | None = "now"):
    return sa.and_(_J.c.done_at.is_(None), _J.c.kind.in_(sa.bindparam("kinds", expanding=True)),
                   _J.c.available_at <= db_time(now))


@query
def _any_ready(d):
    return sa.select(_J.c.id).where(_ready()).limit(1)


@query
def _select_ready(d):
    return (sa.select(_J.c.id).where(_ready())
            .order_by(_J.c.priority.desc(), _J.c.available_at, _J.c.id)
            .limit(sa.bindparam("limit")).with_for_update(skip_locked=True))


@query
def _lease(d):
    until = db_time("now", "lease")
    # The ready conditions repeat the select's: on SQLite nothing else runs between them,
    # on PostgreSQL the rows are locked; stating them keeps the UPDATE correct on its own.
    return (sa.update(_J)
            .where(_J.c.id.in_(sa.bindparam("ids", expanding=True)),
                   _J.c.state.in_(transitions_from("claim")), _J.c.done_at.is_(None))
            .values(state=transition(JobState.QUEUED, "claim").value,
                    attempts=_J.c.attempts + 1, lease_owner=sa.bindparam("owner"),
                    lease_until=until, available_at=until)
            .returning(*_COLUMNS))


def _fenced(action: str, **values: Any) -> Query:
    def build(d):
        return (sa.update(_J)
                .where(_J.c.id == sa.bindparam("job_id"),
                       _J.c.state.in_(transitions_from(action)),
                       _J.c.lease_owner == sa.bindparam("owner"),
                       _J.c.attempts == sa.bindparam("claim_attempts"))
                .values(state=transition(JobState.LEASED, action).value, **values))
    return query(build)


_MOVES: dict[str, Query] = {
    "complete": _fenced("complete", done_at=db_time(), lease_until=None),
    "retry": _fenced("retry", available_at=db_time("now", "delay"),
                     last_error=sa.bindparam("error"), lease_owner=None, lease_until=None),
    "fail": _fenced("fail", done_at=db_time(), last_error=sa.bindparam("error"),
                    lease_until=None),
    "release": _fenced("release", available_at=db_time(), attempts=_J.c.attempts - 1,
                       lease_owner=None, lease_until=None),
    "extend": _fenced("extend", lease_until=db_time("now", "lease"),
                      available_at=db_time("now", "lease")),
}


@query
def _get(d):
    return sa.select(*_COLUMNS).where(_J.c.id == sa.bindparam("job_id"))


@query
def _purge(d):
    return sa.delete(_J).where(sa.or_(
        sa.and_(_J.c.state == JobState.SUCCEEDED.value,
                _J.c.done_at < sa.bindparam("succeeded_before", type_=_J.c.done_at.type)),
        sa.and_(_J.c.state == JobState.FAILED.value,
                _J.c.done_at < sa.bindparam("failed_before", type_=_J.c.done_at.type))))


_L = t.leases


@query
def _take_lease(d):
    stmt = _insert(d)(_L).values(name=sa.bindparam("name"), owner=sa.bindparam("owner"),
                                 expires_at=db_time("now", "ttl"))
    return stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
        where=sa.or_(_L.c.owner == stmt.excluded.owner, _L.c.expires_at <= db_time("now")),
    ).returning(_L.c.owner)  # a row when taken (rowcount of an upsert is not portable)


@query
def _drop_lease(d):
    return sa.delete(_L).where(_L.c.name == sa.bindparam("name"),
                               _L.c.owner == sa.bindparam("owner"))


# -- in another operation's transaction -------------------------------------------------------

@applier(NewJob)
def insert_job(conn: Conn, job: NewJob, now: float | None) -> int | None:
    """Queue ``job`` inside the caller's transaction (``now``: the writer's clock, None for
    the database's); return its id, None when (kind, idempotency key) already exists.

    Raises:
        TypeError: the payload is not JSON-serialisable.
    """
    job_id = conn.scalar(_insert_job, kind=job.kind, payload=json.dumps(job.payload),
                         priority=job.priority, now=now, available_at=job.available_at,
                         source_event=job.source_event, idempotency_key=job.idempotency_key)
    if job_id is not None:
        conn.notify(JOBS_CHANNEL)
    return job_id


class JobQueries(NodeQueries):
    """``JobStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def enqueue_job(self, job: NewJob, *, now: float | None = None) -> int | None:
        return await self.db.write(lambda c: insert_job(c, job, now))

    async def has_ready_jobs(self, kinds: Sequence[str], *, now: float | None = None) -> bool:
        kinds = sorted(set(kinds))
        if not kinds:
            return False
        return await self.db.read(lambda c: c.one(_any_ready, kinds=kinds, now=now)) is not None

    async def claim_jobs(self, kinds: Iterable[str], owner: str, *, lease_seconds: float,
                         limit: int, now: float | None = None) -> list[Job]:
        kinds = sorted(set(kinds))
        if not kinds or limit <= 0:
            return []

        def take(c: Conn) -> list[Job]:
            ids = [r[0] for r in c.all(_select_ready, kinds=kinds, now=now, limit=limit)]
            if not ids:
                return []
            rows = c.all(_lease, ids=ids, owner=owner, now=now, lease=float(lease_seconds))
            order = {job_id: n for n, job_id in enumerate(ids)}
            return sorted((job_row(r, lease_seconds) for r in rows), key=lambda j: order[j.id])

        return await self.db.write(take)

    async def settle_job(self, job: Job, action: str, *, error: str | None = None,
                         delay: float = 0.0, lease_seconds: float = 0.0,
                         now: float | None = None) -> bool:
        try:
            move = _MOVES[action]
        except KeyError:
            raise ValueError(f"unknown job action {action!r}") from None
        params = dict(job_id=job.id, owner=job.lease_owner, claim_attempts=job.attempts, now=now,
                      error=None if error is None else error[:2000], delay=float(delay),
                      lease=float(lease_seconds))
        return await self.db.write(lambda c: c.execute(move, params).rowcount > 0)

    async def get_job(self, job_id: int) -> Job | None:
        row = await self.db.read(lambda c: c.one(_get, job_id=job_id))
        return None if row is None else job_row(row)

    async def purge_jobs(self, *, succeeded_before: float, failed_before: float) -> int:
        return await self.db.write(lambda c: c.run(
            _purge, succeeded_before=succeeded_before, failed_before=failed_before))

    async def wait_for_jobs(self, timeout: float) -> bool:
        return await self.db.wait(JOBS_CHANNEL, timeout)

    async def acquire_lease(self, name: str, owner: str, *, ttl: float,
                            now: float | None = None) -> bool:
        return await self.db.write(lambda c: c.one(
            _take_lease, name=name, owner=owner, ttl=float(ttl), now=now) is not None)

    def acquire_lease_sync(self, name: str, owner: str, *, ttl: float) -> bool:
        return self.db.write_sync(lambda c: c.one(
            _take_lease, name=name, owner=owner, ttl=float(ttl), now=None) is not None)

    async def release_lease(self, name: str, owner: str) -> None:
        await self.db.write(lambda c: c.run(_drop_lease, name=name, owner=owner))

    def release_lease_sync(self, name: str, owner: str) -> None:
        self.db.write_sync(lambda c: c.run(_drop_lease, name=name, owner=owner))
