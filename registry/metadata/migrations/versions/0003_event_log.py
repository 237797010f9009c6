"""The event log: events read by every consumer through its own cursor, job idempotency
keys, ids never reused, nodes with heartbeats.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from registry.metadata.types import Flag, Id, Name, Timestamp  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', Id, sa.Identity(always=False), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    op.create_table('event_consumers',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('updated_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('nodes',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('hostname', sa.Text(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', Timestamp(), nullable=False),
    sa.Column('heartbeat_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # The outbox's facts become the first events: history that a consumer registered with
    # start="earliest" may read; the webhook consumers start at "latest" (registry/events.py).
    op.execute("INSERT INTO events (id, kind, payload, created_at) "
               "SELECT id, kind, payload, created_at FROM outbox ORDER BY id")
    if op.get_bind().dialect.name == "postgresql":
        # Event ids continue after every outbox id ever handed out (jobs keep theirs in
        # source_event), not just after the rows still there; read before the drop.
        op.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), GREATEST("
                   "COALESCE((SELECT max(id) FROM events), 0), COALESCE(pg_sequence_last_value("
                   "pg_get_serial_sequence('outbox', 'id')::regclass), 0)) + 1, false)")
    op.drop_index('outbox_pending', table_name='outbox')
    op.drop_table('outbox')
    # SQLite: the table is copied into one with AUTOINCREMENT (ids never reused). PostgreSQL
    # keeps its table and identity (never reused already); only the column and index come.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table('jobs', recreate='always' if sqlite else 'auto',
                              table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.add_column(sa.Column('idempotency_key', sa.Text(), nullable=True))
        batch.create_index('jobs_idempotency', ['kind', 'idempotency_key'], unique=True)
    # Job ids are never reused: the webhook delivery log keeps them after the jobs are
    # purged, and a legacy SQLite table (no AUTOINCREMENT) handed out max(id) + 1 again. The
    # next id continues after every id ever seen, in either table.
    last_job = ("SELECT max(id) FROM (SELECT max(id) AS id FROM jobs "
                "UNION ALL SELECT max(job_id) FROM webhook_deliveries) AS seen")
    if op.get_bind().dialect.name == "postgresql":
        # ... and after the identity's own high-water mark (ids of purged jobs).
        op.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), GREATEST("
                   f"COALESCE(({last_job}), 0), COALESCE(pg_sequence_last_value("
                   "pg_get_serial_sequence('jobs', 'id')::regclass), 0)) + 1, false)")
    else:
        # AUTOINCREMENT keeps its high-water mark in sqlite_sequence (one row per table,
        # created by the first insert; the copy above made the events one).
        op.execute("DELETE FROM sqlite_sequence WHERE name = 'jobs'")
        op.execute(f"INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs', ({last_job}) "
                   f"WHERE ({last_job}) IS NOT NULL")


def downgrade() -> None:
    raise NotImplementedError("Berth migrations are forward-only")
