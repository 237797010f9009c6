"""Revision 0003 (the event log): the schema it builds equals tables.py on both backends, and
a legacy SQLite database keeps its history, its job ids and their order."""

from __future__ import annotations

import json
import sqlite3

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.legacy_schema import AUTH_MIGRATIONS, MIGRATIONS
from registry.metadata.migrate import current, head
from registry.metadata.store import SQLiteMetadataStore

WORK_TABLES = ("events", "event_consumers", "jobs", "nodes", "leases")


def _shape(engine: sa.Engine, table: str) -> tuple:
    inspector = sa.inspect(engine)
    columns = sorted((c["name"], c["nullable"]) for c in inspector.get_columns(table))
    indexes = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                     for i in inspector.get_indexes(table))
    return columns, indexes, tuple(inspector.get_pk_constraint(table)["constrained_columns"])


async def test_the_work_tables_match_tables_py(store, tmp_path, backend):
    engine = store.db.engine()
    assert current(engine) == head()
    expected_engine = sa.create_engine(f"sqlite:///{tmp_path / 'expected.db'}")
    t.metadata.create_all(expected_engine, tables=[t.metadata.tables[n] for n in WORK_TABLES])
    for name in WORK_TABLES:
        assert _shape(engine, name) == _shape(expected_engine, name), name
    assert not sa.inspect(engine).has_table("outbox")


def _legacy_database(path, *, outbox, jobs, purged_job_ids=()) -> None:
    """A database as the last pre-Alembic Berth left it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT "
                 "NOT NULL, applied_at REAL NOT NULL)")
    for version, name, statements in (*MIGRATIONS, *AUTH_MIGRATIONS):
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    for kind, payload, done_at in outbox:
        conn.execute("INSERT INTO outbox (kind, payload, created_at, available_at, done_at) "
                     "VALUES (?, ?, 5, 5, ?)", (kind, json.dumps(payload), done_at))
    for n in range(jobs):
        conn.execute("INSERT INTO jobs (kind, payload, created_at, available_at) VALUES "
                     "('scan.image', ?, 5, 5)", (json.dumps({"n": n}),))
    for job_id in purged_job_ids:
        # The delivery log remembers a job the legacy purge already deleted.
        conn.execute("INSERT INTO webhook_deliveries (id, event_id, job_id, endpoint, url, "
                     "detail_type, created_at) VALUES (?, 'e', ?, 'ci', 'u', 'd', 5)",
                     (f"d{job_id}", job_id))
    conn.commit()
    conn.close()


async def test_a_legacy_database_keeps_its_events_and_never_reuses_job_ids(tmp_path):
    path = tmp_path / "metadata.db"
    _legacy_database(path, outbox=[("image.pushed", {"repository": "a"}, 6.0),
                                   ("image.deleted", {"repository": "b"}, None)],
                     jobs=3, purged_job_ids=(7,))
    store = SQLiteMetadataStore(path)
    try:
        assert current(store.db.engine()) == head()
        raw = store.db.raw_reader()
        assert raw.execute("SELECT id, kind, payload FROM events ORDER BY id").fetchall() == [
            (1, "image.pushed", '{"repository": "a"}'),
            (2, "image.deleted", '{"repository": "b"}')]
        assert [r[0] for r in raw.execute("SELECT id FROM jobs ORDER BY id")] == [1, 2, 3]
        ddl = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
        assert "AUTOINCREMENT" in ddl
        # The next job and event continue after every id ever handed out.
        assert raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone() \
            == (7,)
        assert raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() \
            == (2,)
    finally:
        await store.close()


async def test_postgresql_at_0002_keeps_its_outbox_as_events_and_ids_continue(postgres):
    """An existing PostgreSQL database (revision 0002) moves its outbox into the event log;
    the next event and the next job continue after every id handed out before."""
    from alembic import command

    from registry.metadata.migrate import _alembic, upgrade

    engine = sa.create_engine(postgres.create_database("mig").replace(
        "postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            command.upgrade(_alembic(conn), "0002")
            conn.commit()
            for n in range(3):
                conn.execute(sa.text(
                    "INSERT INTO outbox (kind, payload, created_at, available_at) VALUES "
                    "('image.pushed', :p, now(), now())"), {"p": json.dumps({"n": n})})
                conn.execute(sa.text(
                    "INSERT INTO jobs (kind, payload, created_at, available_at) VALUES "
                    "('scan.image', '{}', now(), now())"))
            conn.execute(sa.text("DELETE FROM outbox WHERE id = 3"))
            conn.execute(sa.text("DELETE FROM jobs WHERE id = 3"))
            conn.execute(sa.text(
                "INSERT INTO webhook_deliveries (id, event_id, job_id, endpoint, url, "
                "detail_type, created_at) VALUES ('d', 'e', 9, 'ci', 'u', 'd', now()), "
                "('d2', 'e', 2, 'ci', 'u', 'd', now())"))
            conn.commit()
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, payload FROM events ORDER BY id")).all() \
                == [(1, '{"n": 0}'), (2, '{"n": 1}')]
            event = conn.execute(sa.text(
                "INSERT INTO events (kind, payload, created_at) VALUES ('x', '{}', now()) "
                "RETURNING id")).scalar()
            job = conn.execute(sa.text(
                "INSERT INTO jobs (kind, payload, created_at, available_at) VALUES "
                "('scan.image', '{}', now(), now()) RETURNING id")).scalar()
            conn.rollback()
        assert event == 4 and job == 10  # outbox id 3 was handed out once: not again
    finally:
        engine.dispose()


async def test_postgresql_job_ids_continue_after_purged_ones(postgres):
    from alembic import command

    from registry.metadata.migrate import _alembic, upgrade

    engine = sa.create_engine(postgres.create_database("mig").replace(
        "postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            command.upgrade(_alembic(conn), "0002")
            for _ in range(3):
                conn.execute(sa.text("INSERT INTO jobs (kind, payload, created_at, "
                                     "available_at) VALUES ('scan.image', '{}', now(), now())"))
            conn.execute(sa.text("DELETE FROM jobs WHERE id = 3"))  # purged
            conn.commit()
        upgrade(engine)
        with engine.connect() as conn:
            job = conn.execute(sa.text(
                "INSERT INTO jobs (kind, payload, created_at, available_at) VALUES "
                "('scan.image', '{}', now(), now()) RETURNING id")).scalar()
            conn.rollback()
        assert job == 4
    finally:
        engine.dispose()
