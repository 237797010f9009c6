"""Durable jobs with leases, nodes with heartbeats, named leases."""

from __future__ import annotations

import json
from typing import Protocol

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.writes import NewJob, applier


class JobStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class JobQueries:
    """``JobStore`` on a ``Database`` (``self.db``)."""

    db: Database


@query
def _insert_job(d):
    # Transitional (before revision 0003): no idempotency key column yet.
    return sa.insert(t.jobs).values(
        kind=sa.bindparam("kind"), payload=sa.bindparam("payload"),
        priority=sa.bindparam("priority"), state="queued", created_at=sa.bindparam("now"),
        available_at=sa.bindparam("available_at"), source_event=sa.bindparam("source_event"),
    ).returning(t.jobs.c.id)


@applier(NewJob)
def insert_job(conn: Conn, job: NewJob, now: float) -> int | None:
    """Queue ``job`` inside the caller's transaction; return its id (None: a job of this
    kind with this idempotency key already exists).

    Raises:
        TypeError: the payload is not JSON-serialisable.
    """
    return conn.scalar(_insert_job, kind=job.kind, payload=json.dumps(job.payload),
                       priority=job.priority, now=now,
                       available_at=now if job.available_at is None else job.available_at,
                       source_event=job.source_event)
