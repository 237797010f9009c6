"""Durable, at-least-once background work on the metadata database.

Two tables (schema migration 50)::

    outbox   facts, written in the same transaction as the change they describe
             ("image.pushed", "image.deleted", "repository.deleted", "image.scanned")
       |  FanOut.pump: ONE transaction reads pending facts, asks every subscriber which
       |  jobs each implies, inserts them and marks the facts consumed
       v
    jobs     work ("scan.image", "webhook.deliver"), claimed by Workers with leases

A job's life is an explicit state machine (``transition``): queued -claim-> leased
-complete-> succeeded | -retry/release-> queued | -fail-> failed. A lease that expires (the
worker crashed or hung) makes the job claimable again, so work is replayed, never lost
(DESIGN invariant 5). Handlers must therefore be idempotent. ``attempts`` counts claims, so a
job that kills its worker every time still ends FAILED after ``max_attempts``.

Claims are safe across processes: on SQLite the select and the conditional lease update run
in one ``BEGIN IMMEDIATE`` transaction, which holds the database's single write lock. On
PostgreSQL the same statement becomes::

    UPDATE jobs SET state = 'leased', ... WHERE id IN (
        SELECT id FROM jobs WHERE done_at IS NULL AND kind = ANY(%s) AND available_at <= %s
        ORDER BY priority DESC, available_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING ...

(and ``now`` should then come from the database, not from each node's clock).
"""

from __future__ import annotations

import enum
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

log = logging.getLogger(__name__)

# The event vocabulary written to the outbox (facts: noun.verbed). Payloads:
IMAGE_PUSHED = "image.pushed"  # {account, repository, digest, tags, mediaType}
IMAGE_DELETED = "image.deleted"  # {account, repository, digest, tag?}
REPOSITORY_DELETED = "repository.deleted"  # {account, repository}
IMAGE_SCANNED = "image.scanned"  # {account, repository, digest, tags, status, severityCounts}

_COLUMNS = ("id, kind, payload, priority, state, created_at, available_at, attempts, "
            "lease_owner, lease_until, done_at, last_error, source_event")


class JobState(str, enum.Enum):
    QUEUED = "queued"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_TRANSITIONS: dict[tuple[JobState, str], JobState] = {
    (JobState.QUEUED, "claim"): JobState.LEASED,
    (JobState.LEASED, "claim"): JobState.LEASED,  # only once the lease has expired
    (JobState.LEASED, "extend"): JobState.LEASED,
    (JobState.LEASED, "complete"): JobState.SUCCEEDED,
    (JobState.LEASED, "retry"): JobState.QUEUED,
    (JobState.LEASED, "release"): JobState.QUEUED,
    (JobState.LEASED, "fail"): JobState.FAILED,
}


def transition(state: JobState, action: str) -> JobState:
    """The state after ``action``; the SQL below only moves rows along these edges.

    Raises:
        ValueError: the action is not allowed in that state.
    """
    try:
        return _TRANSITIONS[(state, action)]
    except KeyError:
        raise ValueError(f"cannot {action} a {state.value} job") from None


def _sources(action: str) -> str:
    """SQL list of the states an action may leave, drawn from the transition table."""
    return ", ".join(f"'{s.value}'" for (s, a) in _TRANSITIONS if a == action)


class RetryableError(Exception):
    """The job may succeed later; ``retry_after`` (seconds) is a lower bound on the wait,
    within the retry policy's cap."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying cannot help; the job ends FAILED at once and keeps this message."""


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    priority: int
    state: JobState
    created_at: float
    available_at: float
    attempts: int  # claims so far, this one included
    lease_owner: str | None
    lease_until: float | None
    done_at: float | None
    last_error: str | None
    source_event: int | None
    lease_seconds: float = 0.0  # the lease length of the claim that returned this job


def _job(r: Sequence[Any], lease_seconds: float = 0.0) -> Job:
    return Job(id=r[0], kind=r[1], payload=json.loads(r[2]), priority=r[3],
               state=JobState(r[4]), created_at=r[5], available_at=r[6], attempts=r[7],
               lease_owner=r[8], lease_until=r[9], done_at=r[10], last_error=r[11],
               source_event=r[12], lease_seconds=lease_seconds)


class JobSpec(NamedTuple):
    """A job to create; subscribers may return plain ``(kind, payload, priority)`` tuples."""

    kind: str
    payload: dict[str, Any]
    priority: int = 0


def enqueue_in(conn: sqlite3.Connection, kind: str, payload: Mapping[str, Any], *,
               priority: int = 0, available_at: float | None = None,
               now: float | None = None, source_event: int | None = None) -> int:
    """Insert a job inside the caller's open write transaction; return its id.

    Use it to make a job part of a change (a scan request and its job commit together).

    Raises:
        TypeError: ``payload`` is not JSON-serialisable.
    """
    now = time.time() if now is None else now
    # RETURNING, not cursor.lastrowid: PostgreSQL drivers have no lastrowid.
    row = conn.execute(
        "INSERT INTO jobs (kind, payload, priority, state, created_at, available_at, "
        "source_event) VALUES (?, ?, ?, 'queued', ?, ?, ?) RETURNING id",
        (kind, json.dumps(payload), priority, now, now if available_at is None else available_at,
         source_event)).fetchone()
    return int(row[0])


class JobQueue:
    """Jobs in the metadata database. ``store`` offers ``transaction(fn)`` (async), running
    ``fn(conn)`` in one write transaction on its writer thread.

    Every method may raise the store's database errors (``sqlite3.Error``, e.g. the lock
    still busy after the store's timeout); nothing is changed then, and Workers log and poll
    again.
    """

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def enqueue_in(self, conn: sqlite3.Connection, kind: str, payload: Mapping[str, Any], *,
                   priority: int = 0, available_at: float | None = None) -> int:
        """``enqueue_in`` with this queue's clock."""
        return enqueue_in(conn, kind, payload, priority=priority, available_at=available_at,
                          now=self.clock())

    async def enqueue(self, kind: str, payload: Mapping[str, Any], *, priority: int = 0,
                      available_at: float | None = None) -> int:
        """Add a job in its own transaction; return its id.

        Raises:
            TypeError: ``payload`` is not JSON-serialisable.
        """
        return await self.store.transaction(lambda conn: self.enqueue_in(
            conn, kind, payload, priority=priority, available_at=available_at))

    async def claim(self, kinds: Iterable[str], owner: str, *, lease_seconds: float,
                    limit: int, now: float | None = None) -> list[Job]:
        """Lease up to ``limit`` ready jobs of ``kinds``: highest priority first, then the
        longest available. Ready means queued and due, or leased with an expired lease."""
        kinds = sorted(set(kinds))
        if not kinds or limit <= 0:
            return []
        now = self.clock() if now is None else now
        marks = ", ".join("?" * len(kinds))

        def take(conn: sqlite3.Connection) -> list[Job]:
            ids = [r[0] for r in conn.execute(
                f"SELECT id FROM jobs WHERE done_at IS NULL AND kind IN ({marks}) "
                "AND available_at <= ? ORDER BY priority DESC, available_at, id LIMIT ?",
                (*kinds, now, limit))]
            if not ids:
                return []
            until = now + lease_seconds
            # The state and due-time conditions repeat the select's so the statement stays
            # correct where select and update are not under one lock (PostgreSQL).
            rows = conn.execute(
                f"UPDATE jobs SET state = 'leased', attempts = attempts + 1, lease_owner = ?, "
                f"lease_until = ?, available_at = ? WHERE id IN ({', '.join('?' * len(ids))}) "
                f"AND state IN ({_sources('claim')}) AND done_at IS NULL AND available_at <= ? "
                f"RETURNING {_COLUMNS}", (owner, until, until, *ids, now)).fetchall()
            jobs = [_job(r, lease_seconds) for r in rows]
            return sorted(jobs, key=lambda j: (-j.priority, ids.index(j.id)))

        return await self.store.transaction(take)

    async def _move(self, job: Job, action: str, assignments: str,
                    params: Sequence[Any]) -> bool:
        # Fenced on (owner, attempts): a worker whose lease was taken over changes nothing.
        sql = (f"UPDATE jobs SET state = '{transition(JobState.LEASED, action).value}', "
               f"{assignments} WHERE id = ? AND state IN ({_sources(action)}) "
               "AND lease_owner = ? AND attempts = ?")
        moved = await self.store.transaction(lambda conn: conn.execute(
            sql, (*params, job.id, job.lease_owner, job.attempts)).rowcount > 0)
        if not moved:
            log.warning("job lease lost", extra={"job": job.id, "kind": job.kind,
                                                 "action": action})
        return moved

    async def complete(self, job: Job) -> bool:
        """Mark a leased job succeeded; False if this claim no longer holds the lease."""
        return await self._move(job, "complete", "done_at = ?, lease_until = NULL",
                                (self.clock(),))

    async def retry(self, job: Job, error: str, *, delay: float) -> bool:
        """Queue the job again ``delay`` seconds from now, remembering ``error``."""
        return await self._move(
            job, "retry", "available_at = ?, last_error = ?, lease_owner = NULL, "
            "lease_until = NULL", (self.clock() + delay, error[:2000]))

    async def fail(self, job: Job, error: str) -> bool:
        """End the job FAILED; the row stays, with ``error``, for inspection."""
        return await self._move(job, "fail", "done_at = ?, last_error = ?, lease_until = NULL",
                                (self.clock(), error[:2000]))

    async def release(self, job: Job) -> bool:
        """Give the job back untried (a worker shutting down): due now, attempt not counted."""
        return await self._move(job, "release", "available_at = ?, attempts = attempts - 1, "
                                "lease_owner = NULL, lease_until = NULL", (self.clock(),))

    async def expire_dead_leases(self, host: str, alive: Callable[[int], bool]) -> int:
        """End the leases held by processes of ``host`` that no longer run (a server killed
        mid-job and restarted), so their jobs replay now instead of when the lease runs out.
        Owners are ``host:pid:…``; return how many leases were ended."""
        def expire(conn: sqlite3.Connection) -> int:
            now = self.clock()
            rows = conn.execute("SELECT id, lease_owner FROM jobs WHERE state = 'leased' "
                                "AND lease_owner LIKE ?", (f"{host}:%",)).fetchall()
            dead = [job_id for job_id, owner in rows
                    if owner.split(":")[1].isdigit() and not alive(int(owner.split(":")[1]))]
            for job_id in dead:
                # A lease is claimable again once available_at (its end) has passed.
                conn.execute("UPDATE jobs SET lease_until = ?, available_at = ? WHERE id = ? "
                             "AND state = 'leased'", (now, now, job_id))
            return len(dead)

        return await self.store.transaction(expire)

    async def extend_lease(self, job: Job, *, now: float | None = None) -> bool:
        """Renew the lease of a job ``claim`` returned for another ``job.lease_seconds``;
        False if it was lost."""
        until = (self.clock() if now is None else now) + job.lease_seconds
        return await self._move(job, "extend", "lease_until = ?, available_at = ?",
                                (until, until))

    async def get(self, job_id: int) -> Job | None:
        row = await self.store.transaction(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return _job(row) if row else None

    async def purge(self, *, succeeded_before: float, failed_before: float) -> int:
        """Delete finished jobs, and consumed outbox events, done before the given times
        (those that ended with an error by ``failed_before``); return how many."""
        def purge(conn: sqlite3.Connection) -> int:
            jobs = conn.execute("DELETE FROM jobs WHERE (state = 'succeeded' AND done_at < ?) "
                                "OR (state = 'failed' AND done_at < ?)",
                                (succeeded_before, failed_before)).rowcount
            return jobs + conn.execute(
                "DELETE FROM outbox WHERE (last_error IS NULL AND done_at < ?) OR "
                "(last_error IS NOT NULL AND done_at < ?)",
                (succeeded_before, failed_before)).rowcount

        return await self.store.transaction(purge)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    kind: str
    payload: dict[str, Any]
    created_at: float


Subscriber = Callable[[OutboxEvent], Iterable[JobSpec | tuple[str, dict[str, Any], int]]]


class FanOut:
    """Turns outbox facts into jobs. Subscribers see every event and return the jobs it
    implies (usually none). They run inside the write transaction, on the writer thread:
    keep them pure and fast — anything needing I/O belongs in the job's handler."""

    def __init__(self, queue: JobQueue, subscribers: Sequence[Subscriber]) -> None:
        self.queue = queue
        self.subscribers = list(subscribers)

    async def pump(self, *, limit: int = 100) -> int:
        """Consume up to ``limit`` pending events, oldest first; return how many.

        Jobs and the consumed marks commit together: a crash leaves either both or neither.
        A subscriber that raises is a bug, not a transient fault (it would raise again): its
        error is logged and kept in the event's ``last_error``; other subscribers' jobs for
        the same event are still created.
        """
        return await self.queue.store.transaction(lambda conn: self._pump(conn, limit))

    def _pump(self, conn: sqlite3.Connection, limit: int) -> int:
        now = self.queue.clock()
        rows = conn.execute("SELECT id, kind, payload, created_at FROM outbox "
                            "WHERE done_at IS NULL ORDER BY id LIMIT ?", (limit,)).fetchall()
        for row in rows:
            event = OutboxEvent(row[0], row[1], json.loads(row[2]), row[3])
            errors = []
            for subscriber in self.subscribers:
                try:
                    specs = [JobSpec(*spec) for spec in subscriber(event)]
                except Exception as exc:
                    log.exception("event subscriber failed",
                                  extra={"event": event.id, "kind": event.kind})
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                for spec in specs:
                    enqueue_in(conn, spec.kind, spec.payload, priority=spec.priority, now=now,
                               source_event=event.id)
            conn.execute("UPDATE outbox SET done_at = ?, attempts = attempts + 1, "
                         "last_error = ? WHERE id = ? AND done_at IS NULL",
                         (now, "; ".join(errors)[:2000] or None, event.id))
        return len(rows)
