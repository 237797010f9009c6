"""Opening the SQLite file: private file modes, WAL, durable commits."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    # Create the file 0600 before SQLite does (it would use 0644 minus the umask): SQLite
    # gives the -wal and -shm files the database file's mode, so all three stay private.
    # O_EXCL matters: closing any descriptor of an open database drops every POSIX lock this
    # process holds on it, so another process could then delete the WAL under our
    # connections. Only a file that did not exist is opened (and closed) here.
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except (FileExistsError, FileNotFoundError):
        pass  # exists: leave it to SQLite; no such directory: SQLite says so in its words
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _enable_wal(conn: sqlite3.Connection, *, patience: float = 30.0) -> None:
    """Switch a connection to WAL. On a database that is still in rollback mode (a new file),
    two processes switching at once can get SQLITE_BUSY at once, without the busy handler
    (SQLite's deadlock avoidance for lock upgrades): retry until the other one is done."""
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
