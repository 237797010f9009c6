"""Running queries: one ``Database`` per backend, one ``Conn`` the queries are written against.

Queries are SQLAlchemy Core statements declared once with ``@query`` (built per dialect on
first use) and run through ``Conn``:

    @query
    def _tag(d):
        return sa.select(tags.c.digest).where(tags.c.repository_id == sa.bindparam("repo"),
                                              tags.c.name == sa.bindparam("tag"))

    digest = conn.scalar(_tag, repo=7, tag="latest")

Backends:
    SQLite      reads run on the calling thread over a connection of that thread (on the
                event loop an indexed point query costs microseconds, less than a thread
                hop); writes run on one writer thread per process inside ``BEGIN IMMEDIATE``,
                which serialises writers across processes. Statements are compiled once to
                SQL text and run on the ``sqlite3`` connection directly: every column type is
                stored as-is on SQLite (``types.py``), so SQLAlchemy's per-row processing has
                nothing to do, and skipping it keeps the hot read path at raw-driver speed.
    PostgreSQL  psycopg 3 through SQLAlchemy's pool; reads and writes run on a thread pool
                sized like the connection pool. Transactions are READ COMMITTED: queries that
                check before they write lock what they check (``FOR UPDATE``, advisory
                locks); see each query module.

Transactions: ``write(fn)`` runs ``fn(conn)`` in one transaction; COMMIT is inside the error
handling, so a failed COMMIT (disk full) rolls back, leaves the connection usable, and the
original error is what surfaces, mapped to a ``StoreError`` with a reason.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
import contextlib
import logging
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from registry.metadata.errors import StoreBusyError, StoreError, StoreUnavailableError
from registry.metadata.sqlite_connect import connect as sqlite_connect

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]

_DIALECTS = {"sqlite": sqlite_dialect.dialect(), "postgresql": pg_dialect.psycopg.dialect()}


class Query:
    """A statement built once per dialect by ``build(dialect_name)``."""

    __slots__ = ("build", "name", "_built")

    def __init__(self, build: Callable[[str], sa.Executable]) -> None:
        self.build = build
        self.name = getattr(build, "__qualname__", repr(build))
        self._built: dict[str, Any] = {}

    def statement(self, dialect: str) -> sa.Executable:
        stmt = self._built.get(dialect)
        if stmt is None:
            stmt = self._built[dialect] = self.build(dialect)
        return stmt

    def __repr__(self) -> str:
        return f"<query {self.name}>"


def query(build: Callable[[str], sa.Executable]) -> Query:
    """Decorator: declare a statement (see the module docstring)."""
    return Query(build)


class Conn:
    """What queries see: run statements, read rows as tuples of plain values."""

    dialect: str
    _compiler: type
    _cache: dict[int, Any]

    @classmethod
    def compiled(cls, q: Query) -> Any:
        c = cls._cache.get(id(q))
        if c is None:
            c = cls._cache[id(q)] = cls._compiler(q.statement(cls.dialect))
        return c

    def execute(self, q: Query, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def all(self, q: Query, **params: Any) -> list[Row]:
        """Every row."""
        return self.execute(q, params).fetchall()

    def one(self, q: Query, **params: Any) -> Row | None:
        """The first row, or None."""
        return self.execute(q, params).fetchone()

    def scalar(self, q: Query, **params: Any) -> Any:
        """The first column of the first row, or None."""
        row = self.execute(q, params).fetchone()
        return None if row is None else row[0]

    def run(self, q: Query, **params: Any) -> int:
        """Execute; return the number of rows changed."""
        return self.execute(q, params).rowcount

    def many(self, q: Query, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set (no-op for none)."""
        c = self.compiled(q)
        if c.expanding:  # each row expands to its own statement text
            for row in rows:
                self.execute(q, row)
        elif rows:
            self._executemany(c.sql, [c.bind(row)[1] for row in rows])

    def _executemany(self, sql: str, values: list[Any]) -> None:
        raise NotImplementedError

    def notify(self, channel: str) -> None:
        """Wake listeners of ``channel`` once this transaction commits."""
        raise NotImplementedError

    def commit_lazily(self) -> None:
        """Let this transaction's COMMIT return before its WAL record is flushed to disk.

        Visibility is unchanged (other sessions see the commit at once); only a crash of the
        database server itself can lose it. For records whose loss that crash makes harmless
        (a blob claim: the node that would link it has lost its connection too). SQLite
        commits as before.
        """


# -- SQLite -----------------------------------------------------------------------------------

class _Compiled:
    """A statement compiled once for one dialect."""

    __slots__ = ("compiled", "sql", "expanding", "fixed")

    def __init__(self, stmt: sa.Executable, dialect: str) -> None:
        self.compiled = stmt.compile(dialect=_DIALECTS[dialect])
        self.expanding = bool(self.compiled.post_compile_params)
        self.sql = self.compiled.string
        # Values written into the statement (``.values(state="queued")``, ``== "x"``) are
        # bind parameters too, with their value: supplied here, as SQLAlchemy would.
        self.fixed = {name: bind.effective_value for name, bind in self.compiled.binds.items()
                      if not bind.required}

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.fixed, **params} if self.fixed else dict(params)


class _SQLiteCompiled(_Compiled):
    __slots__ = ("names",)

    def __init__(self, stmt: sa.Executable) -> None:
        super().__init__(stmt, "sqlite")
        self.names = tuple(self.compiled.positiontup or ())

    def bind(self, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        values = self.values(params)
        if not self.expanding:
            return self.sql, tuple(values[name] for name in self.names)
        # IN (:list) and other post-compile parameters: expand for these values.
        state = self.compiled.construct_expanded_state(values)
        return state.statement, tuple(state.parameters[n] for n in state.positiontup)


class SQLiteConn(Conn):
    dialect = "sqlite"
    _compiler = _SQLiteCompiled
    _cache: dict[int, _SQLiteCompiled] = {}

    def __init__(self, raw: sqlite3.Connection, wakeups: set[str] | None = None) -> None:
        self.raw = raw
        self._wakeups = wakeups

    def execute(self, q: Query, params: Mapping[str, Any] | None = None) -> sqlite3.Cursor:
        return self.raw.execute(*self.compiled(q).bind(params or {}))

    def _executemany(self, sql: str, values: list[Any]) -> None:
        self.raw.executemany(sql, values)

    def notify(self, channel: str) -> None:
        if self._wakeups is None:
            raise RuntimeError("notify outside a write transaction")
        self._wakeups.add(channel)


# -- PostgreSQL -------------------------------------------------------------------------------

class _PGCompiled(_Compiled):
    """For psycopg, with the bind conversions SQLAlchemy would apply
    (``types.Timestamp`` turns seconds into ``datetime``)."""

    __slots__ = ("processors",)

    def __init__(self, stmt: sa.Executable) -> None:
        super().__init__(stmt, "postgresql")
        self.processors = dict(self.compiled._bind_processors)

    def bind(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        values = self.values(params)
        sql = self.sql
        processors = self.processors
        if self.expanding:
            state = self.compiled.construct_expanded_state(values)
            sql, values, processors = state.statement, dict(state.parameters), \
                {**processors, **state.processors}
        for name, process in processors.items():
            if name in values:
                values[name] = process(values[name])
        return sql, values


def _plain(row: tuple[Any, ...]) -> Row:
    # Every timestamp column is ``types.Timestamp``: seconds since the epoch in Python.
    return tuple(_EPOCH_SECONDS(v) if isinstance(v, datetime) else v for v in row)


def _EPOCH_SECONDS(value: datetime) -> float:  # noqa: N802 - reads like a conversion
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class _PGResult:
    """Buffered rows with the DB-API cursor's read methods."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchall(self) -> list[Row]:
        return self.rows

    def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None


class PGConn(Conn):
    """Statements compiled once and run on the psycopg connection itself: SQLAlchemy's
    per-execution machinery costs more than the loopback round trip it wraps."""

    dialect = "postgresql"
    _compiler = _PGCompiled
    _cache: dict[int, _PGCompiled] = {}

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.raw = connection.connection.driver_connection
        self.notified: set[str] = set()

    def execute(self, q: Query, params: Mapping[str, Any] | None = None) -> _PGResult:
        sql, values = self.compiled(q).bind(params or {})
        with self.raw.cursor() as cursor:
            cursor.execute(sql, values)
            rows = [_plain(r) for r in cursor.fetchall()] if cursor.description else []
            return _PGResult(rows, cursor.rowcount)

    def _executemany(self, sql: str, values: list[Any]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(sql, values)

    def notify(self, channel: str) -> None:
        # Delivered by PostgreSQL at COMMIT, to every node LISTENing; this process's own
        # subscribers are called right after the commit (Database._transaction).
        with self.raw.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%(c)s, '')", {"c": channel})
        self.notified.add(channel)

    def commit_lazily(self) -> None:
        with self.raw.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


# -- databases --------------------------------------------------------------------------------

class Database:
    """One metadata database. ``read``/``write`` run ``fn(conn)``; ``*_sync`` variants may
    be called from any thread that is not the event loop's."""

    dialect: str

    async def read(self, fn: Callable[[Conn], T]) -> T:
        raise NotImplementedError

    def read_sync(self, fn: Callable[[Conn], T]) -> T:
        raise NotImplementedError

    async def write(self, fn: Callable[[Conn], T]) -> T:
        raise NotImplementedError

    def write_sync(self, fn: Callable[[Conn], T]) -> T:
        raise NotImplementedError

    async def wait(self, channel: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a ``notify(channel)``; True if one came."""
        raise NotImplementedError

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every committed ``notify(channel)``: at once, before
        ``write`` returns, for this process's own transactions; on a listener thread, as
        soon as the database delivers them, for other processes' (PostgreSQL)."""
        raise NotImplementedError

    def engine(self) -> sa.Engine:
        """A SQLAlchemy engine for migrations."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def close_sync(self) -> None:
        raise NotImplementedError


class _Wakeups:
    """In-process notification: events per channel, set after a commit that notified."""

    def __init__(self) -> None:
        self._events: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()

    async def wait(self, channel: str, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._events.setdefault(channel, []).append(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._events.get(channel, [])
                if entry in waiters:
                    waiters.remove(entry)

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the firing thread) whenever ``channel`` fires."""
        with self._lock:
            self._callbacks.setdefault(channel, []).append(callback)

    def fire(self, channels: Iterable[str]) -> None:
        channels = list(channels)
        with self._lock:
            callbacks = [cb for channel in channels for cb in self._callbacks.get(channel, ())]
        for callback in callbacks:
            callback()
        with self._lock:
            targets = [entry for channel in channels for entry in self._events.get(channel, ())]
        for loop, event in targets:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(event.set)


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer = sqlite_connect(self.path)
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._write_lock = threading.Lock()
        self._wakeups = _Wakeups()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite_connect(self.path)
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def raw_reader(self) -> sqlite3.Connection:
        """This thread's read connection (legacy raw-SQL callers only)."""
        return self._reader()

    async def read(self, fn: Callable[[Conn], T]) -> T:
        return self.read_sync(fn)

    def read_sync(self, fn: Callable[[Conn], T]) -> T:
        try:
            return fn(SQLiteConn(self._reader()))
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc) from exc

    async def write(self, fn: Callable[[Conn], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.write_sync, fn)

    def write_sync(self, fn: Callable[[Conn], T]) -> T:
        with self._write_lock:
            conn = self._writer
            wakeups: set[str] = set()
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = fn(SQLiteConn(conn, wakeups))
                conn.execute("COMMIT")
            except BaseException as exc:
                self._abandon(exc)
                if isinstance(exc, sqlite3.Error):
                    raise map_sqlite_error(exc) from exc
                raise
        if wakeups:
            self._wakeups.fire(wakeups)
        return result

    def _abandon(self, original: BaseException) -> None:
        """Roll back after a failure, keeping ``original`` the error that surfaces; if even
        that fails, replace the writer connection so no transaction stays open on it."""
        conn = self._writer
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rollback failed; reopening the writer connection",
                        extra={"error": type(original).__name__})
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._writer = sqlite_connect(self.path)

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        self._wakeups.subscribe(channel, callback)

    async def wait(self, channel: str, timeout: float) -> bool:
        # Other processes cannot signal us through SQLite: callers poll with a read when
        # this times out. Writers of this process wake us at once.
        return await self._wakeups.wait(channel, timeout)

    def engine(self) -> sa.Engine:
        return sa.create_engine("sqlite://", creator=lambda: sqlite_connect(self.path),
                                poolclass=sa.pool.NullPool)

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        self._executor.shutdown(wait=True)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()


def map_sqlite_error(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text or "disk I/O" in text:
        reason = "disk full" if code == sqlite3.SQLITE_FULL or "full" in text else "disk I/O error"
        return StoreUnavailableError(reason)
    if "locked" in text or "busy" in text:
        return StoreBusyError("the metadata database stayed locked")
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreError(f"constraint violated: {text}")
    return StoreUnavailableError(f"metadata database error: {text}")


@dataclass(frozen=True, slots=True)
class PoolSettings:
    size: int = 10
    timeout: float = 30.0


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, *, pool: PoolSettings = PoolSettings()) -> None:
        self._url = sa.make_url(_driver_url(url))
        self._engine = sa.create_engine(
            self._url, pool_size=pool.size, max_overflow=0, pool_timeout=pool.timeout,
            isolation_level="READ COMMITTED")
        self._executor = ThreadPoolExecutor(max_workers=pool.size, thread_name_prefix="pg")
        self._wakeups = _Wakeups()
        self._listener: _Listener | None = None
        self._listener_lock = threading.Lock()

    @property
    def url(self) -> sa.URL:
        return self._url

    async def read(self, fn: Callable[[Conn], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read_autocommit, fn)

    def _read_autocommit(self, fn: Callable[[Conn], T]) -> T:
        # The request path: each statement on its own, with no BEGIN and no ROLLBACK round
        # trip. Under READ COMMITTED a transaction would not make two statements see one
        # snapshot anyway; reads that need one (fsck's REPEATABLE READ) use read_sync.
        try:
            with self._engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                return fn(PGConn(connection))
        except (sa.exc.DBAPIError, psycopg_error()) as exc:
            raise map_pg_error(exc) from exc

    def read_sync(self, fn: Callable[[Conn], T]) -> T:
        return self._transaction(fn, commit=False)

    async def write(self, fn: Callable[[Conn], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.write_sync, fn)

    def write_sync(self, fn: Callable[[Conn], T]) -> T:
        return self._transaction(fn, commit=True)

    def _transaction(self, fn: Callable[[Conn], T], *, commit: bool) -> T:
        # Statements run on the psycopg connection itself (PGConn), so the transaction is
        # ended there too: SQLAlchemy never saw it begin. COMMIT is inside the handling.
        try:
            with self._engine.connect() as connection:
                conn = PGConn(connection)
                try:
                    result = fn(conn)
                    if commit:
                        conn.raw.commit()
                    else:
                        conn.raw.rollback()
                    if commit and conn.notified:
                        self._wakeups.fire(conn.notified)
                except BaseException:
                    try:
                        conn.raw.rollback()
                    except Exception:  # noqa: BLE001 - the original error is what surfaces
                        connection.invalidate()
                    raise
                return result
        except (sa.exc.DBAPIError, psycopg_error()) as exc:
            raise map_pg_error(exc) from exc

    async def wait(self, channel: str, timeout: float) -> bool:
        self._listen(channel)
        return await self._wakeups.wait(channel, timeout)

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        self._wakeups.subscribe(channel, callback)
        self._listen(channel)

    def _listen(self, channel: str) -> None:
        with self._listener_lock:
            if self._listener is None:
                self._listener = _Listener(self._url, self._wakeups)
        self._listener.listen(channel)

    def engine(self) -> sa.Engine:
        return self._engine

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._executor.shutdown(wait=True)
        self._engine.dispose()


def _driver_url(url: str) -> str:
    """``postgresql://`` as users write it -> SQLAlchemy's psycopg 3 driver name."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


def map_pg_error(exc: Exception) -> StoreError:
    """A psycopg error (raw or wrapped by SQLAlchemy) as the store's error, with a reason."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate == "53100":
        return StoreUnavailableError("disk full")
    if sqlstate in ("40001", "40P01", "55P03"):
        return StoreBusyError("the metadata database reported a conflict; retry")
    if sqlstate.startswith("23"):
        return StoreError(f"constraint violated ({sqlstate})")
    import psycopg

    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) or \
            isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)):
        return StoreUnavailableError("the metadata database is unreachable")
    return StoreUnavailableError(f"metadata database error ({sqlstate or type(orig).__name__})")


class _Listener:
    """One LISTEN connection per process, on a thread of its own, fanning PostgreSQL
    notifications out to in-process waiters."""

    def __init__(self, url: sa.URL, wakeups: _Wakeups) -> None:
        import psycopg

        self._wakeups = wakeups
        self._channels: set[str] = set()
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._psycopg = psycopg
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()

    def listen(self, channel: str) -> None:
        with self._lock:
            if channel not in self._channels:
                self._channels.add(channel)
                self._pending.append(channel)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._psycopg.connect(self._conninfo, autocommit=True) as conn:
                    with self._lock:
                        self._pending = sorted(self._channels)
                    while not self._stop.is_set():
                        with self._lock:
                            pending, self._pending = self._pending, []
                        for channel in pending:
                            conn.execute(f'LISTEN "{channel}"')
                        fired = {n.channel for n in conn.notifies(timeout=0.2, stop_after=64)}
                        if fired:
                            self._wakeups.fire(fired)
            except Exception:  # noqa: BLE001 - reconnect; waiters fall back to their timeout
                log.warning("notification listener lost its connection; reconnecting")
                self._stop.wait(1.0)
