"""The data directory's modes (registry/datadir.py) and the SQLite file's creation mode."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest

from registry.datadir import PRIVATE_UMASK, ensure_data_dir, private_umask
from registry.metadata.sqlite_connect import connect


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_created_0700_whatever_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        created = ensure_data_dir(tmp_path / "a" / "data")
    finally:
        os.umask(previous)
    assert mode(created) == 0o700


@pytest.mark.parametrize("before,warned", [(0o755, True), (0o770, True), (0o777, True),
                                           (0o500, False), (0o700, False)])
def test_an_existing_directory_is_made_0700(tmp_path, caplog, before, warned):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, before)
    with caplog.at_level(logging.WARNING, logger="registry.datadir"):
        ensure_data_dir(data)
        ensure_data_dir(data)  # a second process finds it private: no second warning
    assert mode(data) == 0o700
    records = [r for r in caplog.records if r.name == "registry.datadir"]
    assert len(records) == (1 if warned else 0)
    if warned:
        assert records[0].previous_mode == f"{before:04o}" and records[0].path == str(data)


def test_private_umask_restores_the_callers_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with private_umask():
            (tmp_path / "inside").write_text("x")
            assert os.umask(PRIVATE_UMASK) == PRIVATE_UMASK
        (tmp_path / "outside").write_text("x")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "inside") == 0o600
    assert mode(tmp_path / "outside") == 0o644


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_sqlite_database_wal_and_shm_are_0600(tmp_path, umask):
    previous = os.umask(umask)
    try:
        conn = connect(tmp_path / "metadata.db")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    finally:
        os.umask(previous)
    try:
        for name in ("metadata.db", "metadata.db-wal", "metadata.db-shm"):
            assert mode(tmp_path / name) == 0o600, name
    finally:
        conn.close()


def test_a_second_connection_keeps_the_first_ones_locks(tmp_path):
    """Opening a connection must never close a descriptor of an open database: that drops
    the process's POSIX locks, and another process closing its connection then deletes the
    WAL under this one (a server lost its WAL to `berth iam` that way)."""
    path = tmp_path / "metadata.db"
    first = connect(path)
    first.execute("CREATE TABLE t (x)")
    first.execute("INSERT INTO t VALUES (1)")
    second = connect(path)
    other = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.execute('SELECT count(*) FROM t').fetchone(); c.close()")
    subprocess.run([sys.executable, "-c", other, str(path)], check=True, timeout=60)
    try:
        assert (tmp_path / "metadata.db-wal").exists()
        first.execute("INSERT INTO t VALUES (2)")
        assert second.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        first.close()
        second.close()
