"""The event log: facts appended in a change's transaction, read by every consumer through a
cursor of its own.

    events            id, kind, payload, created_at   (ids never reused, commit in id order)
    event_consumers   name -> position (the last event id the consumer turned into jobs)

Each consumer (one per webhook endpoint, ...) sees every event once: ``consume_events`` locks
its cursor row, reads the events after it, turns them into jobs with the consumer's pure
subscriber function, inserts the jobs with idempotency keys ``<consumer>:<event>:<n>`` and
moves the cursor, all in ONE transaction. A crash leaves either all of it or none, so jobs are
created exactly once per consumer; their handlers run at least once (leases, ``jobs.py``).

Why ids commit in id order: a cursor means "everything up to id N is done". On PostgreSQL
identity values are taken at INSERT, not at COMMIT, so transaction A could take id 7, B id 8,
B commit, a consumer read 8 and move past 7 before A commits: event 7 would be skipped for
good. ``append_events`` therefore takes a transaction-scoped advisory lock right before it
inserts; the next appender waits until this transaction ends, so a later id is never visible
before an earlier one. The lock is held from the append to COMMIT: producers append their
events last in a transaction. On SQLite ``BEGIN IMMEDIATE`` already serialises writers.

Pruning waits for every consumer that has a cursor, also ones this process's config does not
name (a webhook endpoint disabled for now): when it comes back it resumes where it stopped,
and no event it has not seen is gone. An operator retires a consumer for good with
``drop_consumer``; until then a stalled consumer holds the log (``consumer_positions`` shows
how far behind each is).
"""

from __future__ import annotations

import json
import logging
from typing import Callable, Iterable, Literal, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.dbclock import db_time
from registry.metadata.jobs import insert_job
from registry.metadata.models import Event, LoggedEvent
from registry.metadata.writes import NewJob

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "berth_events"
# Any constant works as long as nothing else in the database uses it: "berthevt" in ASCII.
EVENT_LOCK_KEY = 0x6265727468657674 & 0x7FFFFFFFFFFFFFFF

Start = Literal["earliest", "latest"]
Subscriber = Callable[[LoggedEvent], Iterable[NewJob]]

_E = t.events
_C = t.event_consumers


class EventLogStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""

    async def register_consumer(self, name: str, *, start: Start = "latest") -> int:
        """Create the cursor of consumer ``name`` unless it exists; an existing cursor is
        never moved. ``start``: "earliest" receives every event still in the log,
        "latest" only events appended from now on. Returns: the cursor's position.
        Raises: ValueError (unknown start), StoreError."""

    async def consume_events(self, name: str, subscriber: Subscriber, *, limit: int = 100,
                             now: float | None = None) -> int:
        """Turn up to ``limit`` events after the consumer's cursor into jobs
        (``subscriber(event)`` -> jobs; pure, it runs inside the transaction) and move the
        cursor past them, in one transaction. A subscriber that raises is a bug: the error is
        logged and the event yields no jobs for this consumer. Returns: events consumed.
        Raises: LookupError (no such consumer), StoreError."""

    async def consumers_behind(self, names: Sequence[str]) -> list[str]:
        """A read: which of ``names`` have events after their cursor."""

    async def consumer_positions(self) -> dict[str, int]:
        """Every cursor (also consumers no running node configures)."""

    async def drop_consumer(self, name: str) -> bool:
        """Forget a consumer for good (its cursor no longer holds back pruning)."""

    async def prune_events(self, *, before: float) -> int:
        """Delete events created before ``before`` that every consumer has passed; return
        how many."""

    async def last_event_id(self) -> int:
        """The newest event's id (0 when the log is empty)."""

    async def wait_for_events(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an append anywhere; True if one was signalled."""


# -- appending, inside the change's transaction -------------------------------------------------

@query
def _append(d):
    return sa.insert(_E).values(kind=sa.bindparam("kind"), payload=sa.bindparam("payload"),
                                created_at=sa.bindparam("now"))


@query
def _event_lock(d):
    return sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger)))


def append_events(conn: Conn, events: Sequence[Event], *, now: float) -> None:
    """Append ``events`` inside the caller's transaction (the change they describe), and
    wake consumers at commit.

    On PostgreSQL this first takes the event-log advisory lock (``pg_advisory_xact_lock``),
    held until the transaction ends, so events commit in id order and a consumer's cursor
    never passes an id that commits later (see the module docstring). Call it last in a
    transaction to hold the lock briefly.

    Raises:
        TypeError: a payload is not JSON-serialisable.
    """
    if not events:
        return
    rows = [dict(kind=e.kind, payload=json.dumps(e.payload), now=now) for e in events]
    if conn.dialect == "postgresql":
        conn.execute(_event_lock, {"key": EVENT_LOCK_KEY})
    conn.many(_append, rows)
    conn.notify(EVENTS_CHANNEL)


# -- consumers ------------------------------------------------------------------------------

@query
def _register(d):
    insert = pg.insert if d == "postgresql" else sqlite.insert
    return insert(_C).values(
        name=sa.bindparam("name"), position=sa.bindparam("position"),
        created_at=db_time(None), updated_at=db_time(None),
    ).on_conflict_do_nothing(index_elements=["name"])


@query
def _max_id(d):
    return sa.select(sa.func.coalesce(sa.func.max(_E.c.id), 0))


@query
def _position(d):
    return sa.select(_C.c.position).where(_C.c.name == sa.bindparam("name"))


@query
def _lock_position(d):
    return sa.select(_C.c.position).where(_C.c.name == sa.bindparam("name")).with_for_update()


@query
def _after(d):
    return (sa.select(_E.c.id, _E.c.kind, _E.c.payload, _E.c.created_at)
            .where(_E.c.id > sa.bindparam("position")).order_by(_E.c.id)
            .limit(sa.bindparam("limit")))


@query
def _advance(d):
    return (sa.update(_C).where(_C.c.name == sa.bindparam("consumer"))
            .values(position=sa.bindparam("to"), updated_at=db_time(None)))


@query
def _behind(d):
    newer = sa.select(_E.c.id).where(_E.c.id > _C.c.position).exists()
    return sa.select(_C.c.name).where(_C.c.name.in_(sa.bindparam("names", expanding=True)),
                                      newer)


@query
def _positions(d):
    return sa.select(_C.c.name, _C.c.position).order_by(_C.c.name)


@query
def _drop(d):
    return sa.delete(_C).where(_C.c.name == sa.bindparam("consumer"))


@query
def _slowest(d):
    return sa.select(sa.func.min(_C.c.position), sa.func.count())


@query
def _prune(d):
    return sa.delete(_E).where(_E.c.id <= sa.bindparam("upto"),
                               _E.c.created_at < sa.bindparam("before", type_=_E.c.created_at.type))


def _event(row) -> LoggedEvent:
    return LoggedEvent(id=row[0], kind=row[1], payload=json.loads(row[2]), created_at=row[3])


class EventLogQueries:
    """``EventLogStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def register_consumer(self, name: str, *, start: Start = "latest") -> int:
        if start not in ("earliest", "latest"):
            raise ValueError(f"unknown consumer start {start!r}")

        def register(c: Conn) -> int:
            # "latest" on PostgreSQL: an append still in flight commits with a higher id
            # (the event lock), so it is after the cursor and will be consumed.
            position = c.scalar(_max_id) if start == "latest" else 0
            c.run(_register, name=name, position=position)
            return c.scalar(_position, name=name)

        return await self.db.write(register)

    async def consume_events(self, name: str, subscriber: Subscriber, *, limit: int = 100,
                             now: float | None = None) -> int:
        return await self.db.write(lambda c: _consume(c, name, subscriber, limit, now))

    async def consumers_behind(self, names: Sequence[str]) -> list[str]:
        if not names:
            return []
        return [r[0] for r in await self.db.read(lambda c: c.all(_behind, names=list(names)))]

    async def consumer_positions(self) -> dict[str, int]:
        return dict(await self.db.read(lambda c: c.all(_positions)))

    async def drop_consumer(self, name: str) -> bool:
        return await self.db.write(lambda c: c.run(_drop, consumer=name) > 0)

    async def prune_events(self, *, before: float) -> int:
        def prune(c: Conn) -> int:
            slowest, consumers = c.one(_slowest)
            # No consumer at all: the log is only history, kept for the retention period.
            upto = c.scalar(_max_id) if consumers == 0 else slowest
            return c.run(_prune, upto=upto, before=before)

        return await self.db.write(prune)

    async def last_event_id(self) -> int:
        return await self.db.read(lambda c: c.scalar(_max_id))

    async def wait_for_events(self, timeout: float) -> bool:
        return await self.db.wait(EVENTS_CHANNEL, timeout)


def _consume(c: Conn, name: str, subscriber: Subscriber, limit: int, now: float | None) -> int:
    position = c.scalar(_lock_position, name=name)
    if position is None:
        raise LookupError(f"no event consumer {name!r}")
    rows = c.all(_after, position=position, limit=limit)
    for row in rows:
        event = _event(row)
        try:
            jobs = list(subscriber(event))
        except Exception:
            log.exception("event subscriber failed",
                          extra={"consumer": name, "event": event.id, "kind": event.kind})
            continue
        for index, job in enumerate(jobs):
            insert_job(c, NewJob(job.kind, job.payload, job.priority, job.available_at,
                                 f"{name}:{event.id}:{index}", event.id), now)
    if rows:
        c.run(_advance, consumer=name, to=rows[-1][0])
    return len(rows)
