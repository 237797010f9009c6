"""Nodes: one row per running Berth process, kept alive by heartbeats on the database clock.

A node's id is random per process start (uuid4), so two processes never share one, whatever
their hostname or PID (PID 1 in every container; a restarted process reusing a PID). Job and
named leases name their node. A node whose heartbeat is older than the timeout is dead,
wherever it ran: ``expire_dead_nodes`` ends its leases at once, so its jobs replay now
instead of when their leases would have run out, and forgets the node.

A node that was only slow (a long pause) and heartbeats again simply re-registers; the jobs
it held may meanwhile have been claimed elsewhere, and then its outcomes are fenced off
(``jobs.py``) and its workers cancel the handlers whose lease renewal fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from registry.events import JobState
from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.dbclock import db_time

_N = t.nodes
_J = t.jobs
_L = t.leases


@dataclass(frozen=True, slots=True)
class NodeRow:
    id: str
    hostname: str
    pid: int
    started_at: float
    heartbeat_at: float


class NodeStore(Protocol):
    async def heartbeat(self, node_id: str, *, hostname: str, pid: int,
                        now: float | None = None) -> None:
        """Register the node or renew its heartbeat (database clock). Raises: StoreError."""

    async def expire_dead_nodes(self, timeout: float, *, now: float | None = None) -> int:
        """Forget nodes whose last heartbeat is more than ``timeout`` seconds old and end
        their job and named leases now; return how many jobs became claimable. Only reads
        when no node is dead. Raises: StoreError."""

    async def list_nodes(self) -> list[NodeRow]:
        """Known nodes, oldest first."""

    async def forget_node(self, node_id: str) -> None:
        """Remove a stopping node (its leases must already be released or finished)."""


@query
def _beat(d):
    insert = pg.insert if d == "postgresql" else sqlite.insert
    stmt = insert(_N).values(id=sa.bindparam("node"), hostname=sa.bindparam("hostname"),
                             pid=sa.bindparam("pid"), started_at=db_time("now"),
                             heartbeat_at=db_time("now"))
    return stmt.on_conflict_do_update(index_elements=["id"],
                                      set_={"heartbeat_at": stmt.excluded.heartbeat_at})


def _dead():
    return _N.c.heartbeat_at < db_time("now", "minus")


@query
def _any_dead(d):
    return sa.select(_N.c.id).where(_dead()).limit(1)


@query
def _lock_dead(d):
    # Locked so a node's concurrent heartbeat waits and then finds its row gone (it
    # re-registers); without the lock it could renew a row we are about to delete.
    return sa.select(_N.c.id).where(_dead()).with_for_update(skip_locked=True)


@query
def _expire_jobs(d):
    return (sa.update(_J).where(_J.c.state == JobState.LEASED.value, _J.c.done_at.is_(None),
                                _J.c.lease_owner.in_(sa.bindparam("nodes", expanding=True)))
            .values(lease_until=db_time("now"), available_at=db_time("now")))


@query
def _expire_leases(d):
    return (sa.update(_L).where(_L.c.owner.in_(sa.bindparam("nodes", expanding=True)))
            .values(expires_at=db_time("now")))


@query
def _delete_nodes(d):
    return sa.delete(_N).where(_N.c.id.in_(sa.bindparam("nodes", expanding=True)))


@query
def _list(d):
    return sa.select(_N.c.id, _N.c.hostname, _N.c.pid, _N.c.started_at, _N.c.heartbeat_at) \
        .order_by(_N.c.started_at, _N.c.id)


class NodeQueries:
    """``NodeStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def heartbeat(self, node_id: str, *, hostname: str, pid: int,
                        now: float | None = None) -> None:
        await self.db.write(lambda c: c.run(_beat, node=node_id, hostname=hostname, pid=pid,
                                            now=now))

    async def expire_dead_nodes(self, timeout: float, *, now: float | None = None) -> int:
        params = dict(now=now, minus=-float(timeout))
        if await self.db.read(lambda c: c.one(_any_dead, **params)) is None:
            return 0  # the common case costs a read, not the write lock

        def expire(c: Conn) -> int:
            dead = [r[0] for r in c.all(_lock_dead, **params)]
            if not dead:
                return 0
            replayed = c.run(_expire_jobs, nodes=dead, now=now)
            c.run(_expire_leases, nodes=dead, now=now)
            c.run(_delete_nodes, nodes=dead)
            if replayed:
                from registry.metadata.jobs import JOBS_CHANNEL
                c.notify(JOBS_CHANNEL)
            return replayed

        return await self.db.write(expire)

    async def list_nodes(self) -> list[NodeRow]:
        return [NodeRow(*r) for r in await self.db.read(lambda c: c.all(_list))]

    async def forget_node(self, node_id: str) -> None:
        await self.db.write(lambda c: c.run(_delete_nodes, nodes=[node_id]))
