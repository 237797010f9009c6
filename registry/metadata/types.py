"""Column types that mean the same on SQLite and PostgreSQL.

The store hands the domain plain Python values: timestamps are float seconds since the epoch,
JSON is text the queries decode. On SQLite every type here is stored as-is (REAL, INTEGER,
TEXT) with no bind or result conversion, which is what lets the SQLite read path skip
SQLAlchemy's result processing (``database.py``); a test pins that no column type used on
SQLite converts values. On PostgreSQL timestamps are ``timestamp with time zone``
(microsecond precision) and names compare in byte order (``COLLATE "C"``), so paging by
``name > :last ORDER BY name`` gives the same pages on both.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Timestamp(TypeDecorator):
    """Seconds since the epoch as a float in Python; REAL on SQLite, timestamptz on
    PostgreSQL."""

    impl = sa.Float
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.DateTime(timezone=True))
        return dialect.type_descriptor(sa.Float())

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "postgresql":
            return value
        return datetime.fromtimestamp(value, timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None or dialect.name != "postgresql":
            return value
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            return (value - _EPOCH).total_seconds()
        return float(value)


def Name() -> sa.types.TypeEngine:
    """Text ordered byte-wise on both databases (SQLite's default BINARY collation)."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Identity ids: BIGINT on PostgreSQL; on SQLite INTEGER, so the column is the rowid."""

Flag = sa.Integer
"""Booleans as 0/1 on both (a Boolean would convert on SQLite's read path)."""
