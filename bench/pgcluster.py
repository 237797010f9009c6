"""The PostgreSQL cluster behind the ``berth-pg`` target: one per run, a fresh database per
start of the target.

The cluster is the test suite's throwaway one (``tests/support/postgres.py``: ``initdb`` into a
temporary directory, a free port on 127.0.0.1, trust auth, run as the ``postgres`` user when
we are root). That module switches durability off because test data never outlives a session;
a benchmark must not, because SQLite Berth commits with ``synchronous=FULL`` (an fsync of the
WAL per commit). So once the cluster is up, ``ALTER SYSTEM`` puts PostgreSQL's own defaults
back (``fsync``, ``full_page_writes`` and ``synchronous_commit`` on: one WAL flush per
commit), and the comparison is durable against durable.

The cluster is shared by every ``berth-pg`` start in the run, so its processes (postmaster,
checkpointer, walwriter, one backend per pooled connection) are the target's while it runs:
``pids()`` lists them for the CPU accounting. Each database is dropped when its server stops.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.procstat import process_stats

# PostgreSQL's defaults, overriding tests/support/postgres.py's test-only settings.
DURABLE_SETTINGS = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"}
_RELOAD_TIMEOUT = 10.0


class BenchPostgres:
    """``start()`` once, ``create_database()``/``drop_database()`` per target start,
    ``stop()`` at exit (safe to call twice, or after a failed start)."""

    def __init__(self, *, tmp_root: str) -> None:
        self._tmp_root = tmp_root
        self._cluster = None
        self.version = ""

    def start(self) -> None:
        """Start the cluster under ``tmp_root`` and make it durable.

        Raises:
            RuntimeError: PostgreSQL or psycopg is missing, or the cluster did not start.
        """
        try:
            from tests.support.postgres import PostgresCluster
        except ImportError as exc:
            raise RuntimeError(f"cannot load tests/support/postgres.py: {exc}") from exc
        # The server runs as the `postgres` user when we are root: it must be able to reach
        # its directory inside our (0700) work dir. Traversal only; nothing becomes listable.
        os.chmod(self._tmp_root, 0o711)
        cluster = PostgresCluster(tmp_root=self._tmp_root)
        try:
            cluster.start()
            self._cluster = cluster
            self._make_durable()
        except Exception as exc:
            self._cluster = None
            cluster.stop()
            raise RuntimeError(f"PostgreSQL cluster did not start: {exc}") from exc

    def _connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self._cluster.url(database), autocommit=True, connect_timeout=10)

    def _make_durable(self) -> None:
        with self._connect() as conn:
            for name, value in DURABLE_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
            self.version = conn.execute("SHOW server_version").fetchone()[0]
        # The postmaster applies the reload asynchronously; new backends inherit it from there.
        deadline = time.monotonic() + _RELOAD_TIMEOUT
        while self.settings() != DURABLE_SETTINGS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"settings not applied after reload: {self.settings()}")
            time.sleep(0.1)

    def settings(self) -> dict[str, str]:
        """The durability settings a new connection sees."""
        with self._connect() as conn:
            return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in DURABLE_SETTINGS}

    def create_database(self, prefix: str) -> str:
        """A brand-new empty database; returns its URL.

        Raises:
            RuntimeError: the cluster is not running, or the database could not be created.
        """
        if self._cluster is None:
            raise RuntimeError("PostgreSQL cluster is not running")
        try:
            return self._cluster.create_database(prefix)
        except Exception as exc:
            raise RuntimeError(f"create database failed: {exc}") from exc

    def drop_database(self, url: str) -> None:
        """Drop the database ``url`` names (its server has stopped; FORCE ends any
        connection a killed worker left behind). Errors are ignored: the cluster goes
        away at the end of the run anyway."""
        if self._cluster is None or not url:
            return
        name = url.rsplit("/", 1)[1]
        try:
            from psycopg import sql

            with self._connect() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
        except Exception:  # noqa: BLE001 - best effort, see docstring
            pass

    def pids(self) -> list[int]:
        """The postmaster and its children. Each PostgreSQL child calls setsid(), so they
        share no process group; they do share the postmaster as parent."""
        if self._cluster is None:
            return []
        try:
            postmaster = int(Path(self._cluster.data_dir, "postmaster.pid")
                             .read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return []
        return [postmaster] + [pid for pid, fields in process_stats()
                               if len(fields) > 1 and int(fields[1]) == postmaster]

    def describe(self) -> dict:
        if self._cluster is None:
            return {}
        return {"version": self.version, "port": self._cluster.port,
                "settings": self.settings()}

    def stop(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None
