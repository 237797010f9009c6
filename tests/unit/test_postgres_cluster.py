"""The test suite's PostgreSQL cluster (tests/support/postgres.py) is what it promises.

The PostgreSQL metadata backend and its contract suite run on this cluster, so its promises
are pinned here: reachable on 127.0.0.1 only, durability off, a brand-new empty database per
`create_database()`, timestamps to the microsecond (leases compare database times), and a
`stop()` that leaves neither a server nor a directory behind.
"""

from __future__ import annotations

import socket

import psycopg
import pytest

from tests.support.postgres import PostgresCluster, PostgresMissing, find_bindir

SETTINGS = [
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "400"),
    ("shared_buffers", "128MB"),
    ("server_encoding", "UTF8"),
]


def query(url: str, statement: str, *params) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


@pytest.mark.parametrize(("name", "expected"), SETTINGS)
def test_runs_with_test_settings(postgres, name, expected):
    assert query(postgres.url(), f"SHOW {name}") == [(expected,)]


def test_unix_socket_lives_in_the_cluster_directory(postgres):
    assert query(postgres.url(), "SHOW unix_socket_directories") == [(str(postgres.base_dir),)]
    assert (postgres.base_dir / f".s.PGSQL.{postgres.port}").is_socket()


def test_each_database_is_new_and_empty(postgres):
    first, second = postgres.create_database(), postgres.create_database()
    assert first != second
    for url in (first, second):
        assert url.startswith(f"postgresql://postgres@127.0.0.1:{postgres.port}/t_")
        name = url.rsplit("/", 1)[1]
        assert query(url, "SELECT current_database()") == [(name,)]
        assert query(url, "SELECT count(*) FROM pg_class WHERE relnamespace = "
                          "'public'::regnamespace") == [(0,)]
    query(first, "CREATE TABLE only_in_first (id int)")
    assert query(second, "SELECT to_regclass('only_in_first')") == [(None,)]


def test_database_names_take_a_cleaned_prefix(postgres):
    url = postgres.create_database("Contract Suite-1")
    assert url.rsplit("/", 1)[1].startswith("contract_suite_1_")


def test_now_has_microsecond_precision(postgres):
    url = postgres.create_database()
    # Five transactions: the chance that all land on whole milliseconds is 1e-15.
    stamps = [query(url, "SELECT now()")[0][0] for _ in range(5)]
    assert all(stamp.tzinfo is not None for stamp in stamps)
    assert any(stamp.microsecond % 1000 for stamp in stamps), stamps


def test_stop_removes_the_server_and_its_directory():
    cluster = PostgresCluster().start()
    base_dir, port = cluster.base_dir, cluster.port
    assert base_dir.is_dir()
    cluster.stop()
    assert not base_dir.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    cluster.stop()  # a second stop (the atexit one) is harmless


def fake_bindir(root, version: str, tools=("initdb", "pg_ctl", "postgres")):
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    for tool in tools:
        (bindir / tool).write_text("#!/bin/sh\n")
        (bindir / tool).chmod(0o755)
    return bindir


def test_newest_complete_installation_is_used(tmp_path):
    for version in ("9.6", "13", "15"):
        fake_bindir(tmp_path, version)
    fake_bindir(tmp_path, "16", tools=("pg_ctl",))  # a client-only leftover: not a server
    assert find_bindir(tmp_path) == tmp_path / "15" / "bin"


def test_missing_postgresql_says_how_to_install_it(tmp_path):
    with pytest.raises(PostgresMissing, match="scripts/test.sh"):
        find_bindir(tmp_path)
