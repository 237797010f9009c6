"""The event log: append events in a change's transaction; consumers read them through their
own cursors."""

from __future__ import annotations

import json
from typing import Protocol, Sequence

import sqlalchemy as sa

from registry.metadata.database import Conn, Database, query
from registry.metadata.models import Event
from registry.metadata.types import Timestamp


class EventLogStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class EventLogQueries:
    """``EventLogStore`` on a ``Database`` (``self.db``)."""

    db: Database


# Transitional (before revision 0003): the legacy outbox table.
_outbox = sa.table("outbox", sa.column("kind"), sa.column("payload"),
                   sa.column("created_at", Timestamp), sa.column("available_at", Timestamp),
                   sa.column("priority"))


@query
def _append(d):
    return sa.insert(_outbox).values(
        kind=sa.bindparam("kind"), payload=sa.bindparam("payload"),
        created_at=sa.bindparam("now"), available_at=sa.bindparam("now"),
        priority=sa.bindparam("priority"))


def append_events(conn: Conn, events: Sequence[Event], *, now: float) -> None:
    """Append ``events`` inside the caller's transaction (the change they describe)."""
    conn.many(_append, [dict(kind=e.kind, payload=json.dumps(e.payload), now=now,
                             priority=e.priority) for e in events])
