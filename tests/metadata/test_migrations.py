"""One Alembic history for both databases: what it builds, how it adopts old databases, and
that concurrent upgrades never race."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from registry.metadata.database import SQLiteDatabase
from registry.metadata.factory import open_database
from registry.metadata.legacy_schema import AUTH_MIGRATIONS, MIGRATIONS
from registry.metadata.migrate import SchemaBehindError, check, current, head, upgrade
from registry.metadata.tables import metadata


def _engine(config):
    return open_database(config).engine()


def test_the_history_builds_exactly_the_declared_schema(store):
    with store.db.engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_check_refuses_an_empty_database(metadata_config):
    metadata_config.data_dir.mkdir(parents=True)
    engine = _engine(metadata_config)
    with pytest.raises(SchemaBehindError, match="berth db upgrade"):
        check(engine)
    upgrade(engine, lock_path=metadata_config.data_dir / "lock")
    check(engine)


def _upgrade_in_child(url: str, lock: str, results) -> None:
    import sqlalchemy as sa

    from registry.metadata.database import _driver_url
    from registry.metadata.migrate import upgrade

    try:
        engine = sa.create_engine(_driver_url(url)) if url.startswith("postgres") else \
            SQLiteDatabase(lock.removesuffix(".lock")).engine()
        results.put(upgrade(engine, lock_path=None if url.startswith("postgres") else
                            __import__("pathlib").Path(lock)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(repr(exc))


def test_concurrent_upgrades_of_one_database_never_race(metadata_config):
    metadata_config.data_dir.mkdir(parents=True, exist_ok=True)
    path = metadata_config.metadata_path
    url = metadata_config.metadata.url
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    children = [context.Process(target=_upgrade_in_child,
                                args=(url, f"{path}.lock", results)) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert sorted(o[0] is None for o in outcomes) == [False, False, False, True]
    assert {o[1] for o in outcomes} == {head()}


def _legacy_database(path, *, auth: bool) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at REAL NOT NULL)")
    for version, name, statements in (*MIGRATIONS, *(AUTH_MIGRATIONS if auth else ())):
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    conn.execute("INSERT INTO repositories (id, account, name, created_at) "
                 "VALUES (7, '000000000000', 'old/app', 1.5)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("auth", [True, False], ids=["with-identities", "registry-only"])
def test_a_database_from_before_alembic_is_adopted_with_its_data(tmp_path, auth):
    path = tmp_path / "metadata.db"
    _legacy_database(path, auth=auth)
    database = SQLiteDatabase(path)
    try:
        engine = database.engine()
        assert upgrade(engine, lock_path=tmp_path / "lock") == (None, head())
        assert current(engine) == head()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, name, created_at FROM repositories")).all() \
                == [(7, "old/app", 1.5)]
            assert sa.inspect(conn).has_table("users")
    finally:
        database.close_sync()


def _berth(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_db_commands_report_and_upgrade_without_printing_the_password(postgres, tmp_path):
    url = postgres.create_database("cli").replace("postgres@", "postgres:hunter2@")
    env = {"BERTH_METADATA__URL": url}
    before = _berth("db", "current", "--data", str(tmp_path), env=env)
    assert before.returncode == 1 and "berth db upgrade" in before.stdout
    done = _berth("db", "upgrade", "--data", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    assert f"to {head()}" in done.stdout
    after = _berth("db", "current", "--data", str(tmp_path), env=env)
    assert after.returncode == 0 and "up to date" in after.stdout
    unreachable = _berth("db", "upgrade", "--data", str(tmp_path), env={
        "BERTH_METADATA__URL": "postgresql://postgres:hunter2@127.0.0.1:1/nothing"})
    assert unreachable.returncode == 2 and "unreachable" in unreachable.stderr
    for result in (before, done, after, unreachable):
        assert "hunter2" not in result.stdout + result.stderr


def test_serve_refuses_a_postgresql_database_that_is_behind(postgres, tmp_path):
    url = postgres.create_database("serve")
    result = _berth("serve", "--data", str(tmp_path), "--listen", "127.0.0.1:1",
                    env={"BERTH_METADATA__URL": url})
    assert result.returncode == 2
    assert "run `berth db upgrade`" in result.stderr


def test_the_head_constant_is_the_newest_version_file():
    from registry.metadata.migrate import HEAD, script_head

    assert HEAD == script_head()
