"""Legacy raw-SQL queries on SQLite (being moved to SQLAlchemy Core modules).

What is left here belongs to other areas until they port it: scans (scan_queries.py), the
raw ``transaction`` seam and named leases (jobs). Repositories, blobs, manifests, tags,
deletes and image listings moved to repositories.py, manifests.py, deletes.py and
image_pages.py.

Was: SQLite metadata store (WAL), the embedded default.

Reads run on the event loop over a dedicated read connection: WAL readers never wait for the
writer, and an indexed point query costs microseconds, less than a thread hop. Writes run on
one writer thread per process with ``BEGIN IMMEDIATE``, so a write transaction is serialised
against other processes by SQLite's lock; ``synchronous=FULL`` makes every commit durable
before the client hears "201 Created" (DESIGN invariant 2).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Callable, Sequence

from registry.metadata.models import Event
from registry.metadata.database import SQLiteDatabase
from registry.metadata.sqlite_connect import connect  # noqa: F401 - re-exported


class LegacySQLiteQueries:
    """Queries still written as raw SQLite SQL, moving to the Core modules one by one
    (SQLite only; they go away once every caller uses the new mixins)."""

    db: SQLiteDatabase

    # -- plumbing (legacy: raw sqlite3 connections, until every query moves to Core) ------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.raw_reader().execute(sql, params).fetchall()

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.db.raw_reader().execute(sql, params).fetchone()

    def transaction_sync(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` in one write transaction (any thread; the GC calls it directly)."""
        return self.db.write_sync(lambda conn: fn(conn.raw))

    async def transaction(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await self.db.write(lambda conn: fn(conn.raw))


    @staticmethod
    def _add_events(conn: sqlite3.Connection, events: Sequence[Event]) -> None:
        now = time.time()
        for event in events:
            conn.execute("INSERT INTO outbox (kind, payload, created_at, available_at, priority) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (event.kind, json.dumps(event.payload), now, now, event.priority))

    async def acquire_lease(self, name: str, owner: str, *, ttl: float) -> bool:
        """Take or renew a named lease (one maintenance runner across processes)."""
        def take(conn: sqlite3.Connection) -> bool:
            now = time.time()
            cur = conn.execute(
                "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at < ?",
                (name, owner, now + ttl, now))
            return cur.rowcount > 0

        return await self.transaction(take)
