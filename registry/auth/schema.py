"""The identity schema, as ordered migrations in ``registry.metadata.schema``'s format.

Versions start at 100 so they never collide with the registry core's numbering; both lists
share the ``schema_migrations`` table, so appending ``AUTH_MIGRATIONS`` to ``MIGRATIONS`` and
calling ``ensure_auth_schema`` are interchangeable and idempotent in either order. Portable SQL
(SQLite and PostgreSQL). Never edit a released migration: add one.

Ids follow IAM: users ``AIDA`` + 17 characters, access keys ``AKIA`` + 16. Secrets are stored as
base64 text of ``SecretBox`` output (TEXT is portable; BLOB and BYTEA are not).
"""

from __future__ import annotations

import sqlite3

from registry.metadata.sqlite import migrate

AUTH_MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (100, "identities: accounts, users, access keys, inline user policies", [
        """CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL)""",
        """CREATE TABLE users (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(id),
            name TEXT NOT NULL,
            arn TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (account, name))""",
        """CREATE TABLE access_keys (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            secret_ciphertext TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Inactive')),
            created_at REAL NOT NULL)""",
        "CREATE INDEX access_keys_user ON access_keys (user_id)",
        """CREATE TABLE user_policies (
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            document TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (user_id, name))""",
    ]),
]


def ensure_auth_schema(conn: sqlite3.Connection) -> None:
    """Apply the ``AUTH_MIGRATIONS`` not yet recorded in ``schema_migrations`` (with the
    metadata store's migration runner, so both record versions in one table)."""
    migrate(conn, AUTH_MIGRATIONS)
