"""Legacy raw-SQL queries on SQLite (being moved to SQLAlchemy Core modules).

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
from pathlib import Path
from typing import Any, Callable, Sequence

from registry.metadata.delete_queries import DeleteQueries
from registry.metadata.ecr_queries import ECRQueries
from registry.metadata.models import (
    Event, ManifestRecord, MissingReferencesError, Reference, Repository,
)
from registry.metadata.rows import MANIFEST_COLUMNS, REPOSITORY_COLUMNS, manifest_row, repository_row
from registry.metadata.scan_queries import ScanQueries
from registry.metadata.database import SQLiteConn, SQLiteDatabase
from registry.metadata.eventlog import append_events
from registry.metadata.sqlite_connect import connect  # noqa: F401 - re-exported


class LegacySQLiteQueries(ECRQueries, ScanQueries, DeleteQueries):
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
        # Legacy callers hold a raw connection: the event log's appender on the same one.
        append_events(SQLiteConn(conn, set()), events, now=time.time())

    # -- repositories -------------------------------------------------------------------

    async def get_repository(self, account: str, name: str) -> Repository | None:
        return repository_row(self._read_one(f"SELECT {REPOSITORY_COLUMNS} FROM repositories "
                                          "WHERE account = ? AND name = ?", (account, name)))

    async def ensure_repository(self, account: str, name: str) -> Repository:
        existing = await self.get_repository(account, name)
        if existing is not None:
            return existing

        def create(conn: sqlite3.Connection) -> Repository:
            conn.execute("INSERT INTO repositories (account, name, created_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (account, name) DO NOTHING", (account, name, time.time()))
            row = conn.execute(f"SELECT {REPOSITORY_COLUMNS} FROM repositories "
                               "WHERE account = ? AND name = ?", (account, name)).fetchone()
            return repository_row(row)

        return await self.transaction(create)

    async def list_repositories(self, account: str, *, last: str | None, limit: int,
                                skip: int = 0) -> list[str]:
        """Names after ``last`` in name order, passing over the first ``skip`` of them."""
        rows = self._read("SELECT name FROM repositories WHERE account = ? AND name > ? "
                          "ORDER BY name LIMIT ? OFFSET ?", (account, last or "", limit, skip))
        return [r[0] for r in rows]

    # -- blobs --------------------------------------------------------------------------

    async def linked_blob_size(self, repository_id: int, digest: str) -> int | None:
        row = self._read_one("SELECT b.size FROM repository_blobs l JOIN blobs b "
                             "ON b.digest = l.digest WHERE l.repository_id = ? AND l.digest = ?",
                             (repository_id, digest))
        return row[0] if row else None

    async def link_blob(self, repository_id: int, digest: str, size: int,
                        publish: Callable[[], None]) -> None:
        def link(conn: sqlite3.Connection) -> None:
            now = time.time()
            publish()
            conn.execute("INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
                         (digest, size, now))
            conn.execute("INSERT INTO repository_blobs (repository_id, digest, linked_at) "
                         "VALUES (?, ?, ?) ON CONFLICT (repository_id, digest) "
                         "DO UPDATE SET linked_at = excluded.linked_at",
                         (repository_id, digest, now))

        await self.transaction(link)

    async def mount_blob(self, source_repository_id: int, target_repository_id: int,
                         digest: str) -> int | None:
        def mount(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT b.size FROM repository_blobs l JOIN blobs b "
                               "ON b.digest = l.digest WHERE l.repository_id = ? "
                               "AND l.digest = ?", (source_repository_id, digest)).fetchone()
            if row is None:
                return None
            conn.execute("INSERT INTO repository_blobs (repository_id, digest, linked_at) "
                         "VALUES (?, ?, ?) ON CONFLICT (repository_id, digest) "
                         "DO UPDATE SET linked_at = excluded.linked_at",
                         (target_repository_id, digest, time.time()))
            return row[0]

        return await self.transaction(mount)

    async def touch_blob_link(self, repository_id: int, digest: str) -> None:
        def touch(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE repository_blobs SET linked_at = ? WHERE repository_id = ? "
                         "AND digest = ?", (time.time(), repository_id, digest))

        await self.transaction(touch)

    async def blob_link_age(self, repository_id: int, digest: str) -> float | None:
        row = self._read_one("SELECT linked_at FROM repository_blobs WHERE repository_id = ? "
                             "AND digest = ?", (repository_id, digest))
        return time.time() - row[0] if row else None

    # -- manifests and tags -------------------------------------------------------------

    async def get_manifest(self, repository_id: int, digest: str) -> ManifestRecord | None:
        return manifest_row(self._read_one(
            f"SELECT {MANIFEST_COLUMNS} FROM manifests WHERE repository_id = ? AND digest = ?",
            (repository_id, digest)))

    async def resolve_tag(self, repository_id: int, tag: str) -> ManifestRecord | None:
        return manifest_row(self._read_one(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.subject_digest, "
            "m.annotations, m.pushed_at FROM tags t JOIN manifests m "
            "ON m.repository_id = t.repository_id AND m.digest = t.digest "
            "WHERE t.repository_id = ? AND t.name = ?", (repository_id, tag)))

    async def put_manifest(self, repository_id: int, manifest: ManifestRecord,
                           tags: Sequence[str], publish: Callable[[], None],
                           events: Sequence[Event],
                           check_tag: Callable[[str, str | None], None] | None = None,
                           extra: Callable[[sqlite3.Connection, ManifestRecord], None] | None
                           = None) -> None:
        def put(conn: sqlite3.Connection) -> None:
            missing = [ref for ref in manifest.references if not _reference_exists(
                conn, repository_id, ref)]
            if missing:
                raise MissingReferencesError(missing)
            if check_tag is not None:
                for tag in tags:
                    row = conn.execute("SELECT digest FROM tags WHERE repository_id = ? "
                                       "AND name = ?", (repository_id, tag)).fetchone()
                    check_tag(tag, row[0] if row else None)
            now = time.time()
            publish()
            conn.execute("INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
                         (manifest.digest, manifest.size, now))
            conn.execute(
                "INSERT INTO manifests (repository_id, digest, media_type, size, artifact_type, "
                "subject_digest, annotations, pushed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at",
                (repository_id, manifest.digest, manifest.media_type, manifest.size,
                 manifest.artifact_type, manifest.subject_digest,
                 json.dumps(manifest.annotations) if manifest.annotations else None, now))
            conn.executemany(
                "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, "
                "child_kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(repository_id, manifest.digest, ref.digest, ref.kind)
                 for ref in manifest.references])
            conn.executemany(
                "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, "
                "updated_at = excluded.updated_at",
                [(repository_id, tag, manifest.digest, now) for tag in tags])
            self._add_events(conn, events)
            if extra is not None:
                extra(conn, manifest)

        await self.transaction(put)

    async def delete_manifest(self, repository_id: int, digest: str,
                              events: Sequence[Event]) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
                               (repository_id, digest))
            if cur.rowcount == 0:
                return False
            self._add_events(conn, events)
            return True

        return await self.transaction(delete)

    async def delete_tag(self, repository_id: int, tag: str, events: Sequence[Event]) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM tags WHERE repository_id = ? AND name = ?",
                               (repository_id, tag))
            if cur.rowcount == 0:
                return False
            self._add_events(conn, events)
            return True

        return await self.transaction(delete)

    async def list_tags(self, repository_id: int, *, last: str | None,
                        limit: int | None) -> list[str]:
        # Byte-wise order (ASCIIbetical) satisfies the spec's main branch (reference A.5).
        sql = "SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name"
        params: list[Any] = [repository_id, last or ""]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [r[0] for r in self._read(sql, params)]

    async def tags_for(self, repository_id: int, digest: str) -> list[str]:
        return [r[0] for r in self._read("SELECT name FROM tags WHERE repository_id = ? AND "
                                         "digest = ? ORDER BY name", (repository_id, digest))]

    async def list_referrers(self, repository_id: int, subject_digest: str,
                             artifact_type: str | None) -> list[ManifestRecord]:
        sql = (f"SELECT {MANIFEST_COLUMNS} FROM manifests WHERE repository_id = ? "
               "AND subject_digest = ?")
        params: list[Any] = [repository_id, subject_digest]
        if artifact_type is not None:
            sql += " AND artifact_type = ?"
            params.append(artifact_type)
        sql += " ORDER BY digest"
        return [m for m in map(manifest_row, self._read(sql, params)) if m is not None]


def _reference_exists(conn: sqlite3.Connection, repository_id: int, ref: Reference) -> bool:
    if ref.kind == "manifest":
        sql = "SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?"
    else:
        sql = "SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?"
    return conn.execute(sql, (repository_id, ref.digest)).fetchone() is not None
