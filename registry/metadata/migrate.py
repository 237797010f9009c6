"""Schema migrations: one Alembic history for SQLite and PostgreSQL.

``upgrade(engine)`` brings a database to the newest revision; ``current(engine)`` tells where
it is; ``check(engine)`` refuses a database that is behind (servers call it at start and stop
with a message that says to run ``berth db upgrade``). Concurrent upgrades never race: on
PostgreSQL they serialise on an advisory lock held for the whole upgrade, on SQLite on an
exclusive lock of a file next to the database; whoever comes second finds nothing to do.

Databases made before Berth used Alembic (a ``schema_migrations`` table, SQLite only) are
adopted: the revisions matching what they hold are recorded, then the rest is applied.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

# Alembic is imported only when a migration runs: every process checks the schema at start
# (servers, each CLI command), and that check is one SELECT against the HEAD constant.

_SCRIPTS = Path(__file__).parent / "migrations"
# Any constant works as long as nothing else in the database uses it: "berthmig" in ASCII.
_PG_LOCK_KEY = 0x626572_74686D6967 & 0x7FFFFFFFFFFFFFFF

_LEGACY_REVISION = "0002"  # what the complete legacy schema (versions 1-100) equals


class SchemaBehindError(RuntimeError):
    """The database is not at the newest revision; ``berth db upgrade`` fixes it."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        where = f"at revision {current}" if current else "not initialised"
        super().__init__(f"the metadata database is {where}, this Berth needs revision {head}: "
                         "run `berth db upgrade`")


HEAD = "0003"
"""The newest revision in migrations/versions (a test pins that they agree)."""


def _alembic(connection: sa.Connection):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    return HEAD


def script_head() -> str:
    """The head revision as Alembic reads it from the version files."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(_SCRIPTS)).get_current_head()


_VERSION = sa.table("alembic_version", sa.column("version_num"))


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at (None: empty or not migrated)."""
    with engine.connect() as conn:
        return _current(conn)


def _current(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.select(_VERSION.c.version_num)).scalar()


def check(engine: sa.Engine) -> None:
    """Raises: SchemaBehindError when the database is not at the head revision."""
    at = current(engine)
    if at != head():
        raise SchemaBehindError(at, head())


def upgrade(engine: sa.Engine, *, lock_path: Path | None = None) -> tuple[str | None, str]:
    """Apply every missing revision; return (revision before, revision after)."""
    at = current(engine)
    if at == head():
        return at, at  # the common case, without taking the lock
    with _migration_lock(engine, lock_path):
        from alembic import command

        with engine.connect() as conn:
            before = _current(conn)
            if before is None:
                legacy = _legacy_revision(conn)
                if legacy is not None:
                    command.stamp(_alembic(conn), legacy)
                    conn.commit()
            command.upgrade(_alembic(conn), "head")
            conn.commit()
            return before, _current(conn)


def _legacy_revision(conn: sa.Connection) -> str | None:
    """Complete a pre-Alembic database from the frozen legacy lists and return the revision
    it then equals (None: not a legacy database)."""
    if not sa.inspect(conn).has_table("schema_migrations"):
        return None
    from registry.metadata.legacy_schema import AUTH_MIGRATIONS, MIGRATIONS

    raw = conn.connection.driver_connection
    raw.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in raw.execute("SELECT version FROM schema_migrations")}
        for version, name, statements in (*MIGRATIONS, *AUTH_MIGRATIONS):
            if version in done:
                continue
            for statement in statements:
                raw.execute(statement)
            raw.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (version, name, time.time()))
        raw.execute("COMMIT")
    except BaseException:
        raw.execute("ROLLBACK")
        raise
    return _LEGACY_REVISION


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine, lock_path: Path | None) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    if lock_path is None:
        database = engine.url.database
        lock_path = Path(f"{database}.migrate.lock") if database else None
    if lock_path is None:
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def upgrade_sqlite(path: Path) -> None:
    """Bring the SQLite file at ``path`` to the newest schema (creating it if need be)."""
    from registry.metadata.database import SQLiteDatabase

    database = SQLiteDatabase(path)
    try:
        engine = database.engine()
        upgrade(engine, lock_path=Path(f"{path}.migrate.lock"))
        engine.dispose()
    finally:
        database.close_sync()
