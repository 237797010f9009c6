"""Alembic environment: always run programmatically by ``registry.metadata.migrate`` with an
open connection in ``config.attributes["connection"]`` (never from an alembic.ini)."""

from __future__ import annotations

from alembic import context

from registry.metadata.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite can only ALTER a table by copying it: batch mode does that for the migrations.
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
