"""The database's clock in SQL: "now (+ seconds)" compiled per dialect.

Leases, heartbeats and job due times are compared on ONE clock, the database's, so nodes
whose clocks disagree still agree on whether a lease has run out. ``db_time(now, plus)``
is the time ``now`` (a bound parameter; NULL means "the database's clock") plus ``plus``
seconds (a bound parameter or a number)::

    PostgreSQL  COALESCE(:now, clock_timestamp()) + make_interval(secs => :plus)
    SQLite      COALESCE(:now, (julianday('now') - 2440587.5) * 86400.0) + :plus

``clock_timestamp()``, not ``now()``: ``now()`` is the transaction's start, and a claim
that waited for a lock would hand out a lease already partly spent. Tests pass ``now`` to
move time without sleeping; production passes None.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from registry.metadata.types import Timestamp


class DbTime(FunctionElement):
    """``now`` (NULL: the database clock) plus optionally ``plus`` seconds, as a Timestamp."""

    name = "db_time"
    inherit_cache = True
    type = Timestamp()


def db_time(now: str | None = "now", plus: str | float | None = None) -> DbTime:
    """"Database now" (or the bound parameter ``now`` when it is not NULL) plus ``plus``
    seconds (the name of a bound parameter, or a constant)."""
    now_clause = sa.bindparam(now, type_=Timestamp()) if now else sa.null()
    if plus is None:
        plus_clause = None
    elif isinstance(plus, str):
        plus_clause = sa.bindparam(plus, type_=sa.Float())
    else:
        plus_clause = sa.literal(float(plus), sa.Float())
    return DbTime(now_clause) if plus_clause is None else DbTime(now_clause, plus_clause)


@compiles(DbTime, "postgresql")
def _pg(element: DbTime, compiler, **kw: Any) -> str:
    now_clause, *plus = element.clauses.clauses
    now = f"COALESCE({compiler.process(now_clause, **kw)}, clock_timestamp())"
    if not plus:
        return now
    return f"({now} + make_interval(secs => {compiler.process(plus[0], **kw)}))"


@compiles(DbTime, "sqlite")
def _sqlite(element: DbTime, compiler, **kw: Any) -> str:
    now_clause, *plus = element.clauses.clauses
    now = (f"COALESCE({compiler.process(now_clause, **kw)}, "
           "(julianday('now') - 2440587.5) * 86400.0)")
    if not plus:
        return now
    return f"({now} + {compiler.process(plus[0], **kw)})"


@compiles(DbTime)
def _default(element: DbTime, compiler, **kw: Any) -> str:
    raise sa.exc.CompileError(f"no database clock for {compiler.dialect.name}")


def earliest(d: str, *exprs: ColumnElement) -> ColumnElement:
    """The smallest of ``exprs`` (``LEAST`` on PostgreSQL, scalar ``min`` on SQLite)."""
    fn = sa.func.least if d == "postgresql" else sa.func.min
    return fn(*exprs, type_=Timestamp())
