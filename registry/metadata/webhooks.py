"""Webhook deliveries and their attempts.

One row per (event, endpoint) delivery, one per attempt. A delivery's status is not stored:
the webhook log derives it from the delivery's job (``scanner/webhook_log.py``), so listings
join the job. A delivery whose job has not been attempted yet has no row of its own; listings
show it from its queued job, reading the few fields they need from the job's JSON payload
(``{"delivery", "endpoint", "event": {"id", "detail-type", "detail": {...}}}``, written by
``scanner/webhooks.py``).

Listing is one bounded query per page, newest first, keyset-paged by (created_at, id); the
attempts of a page are one more query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.types import Timestamp


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    number: int  # the job's claim count: a gap means a worker died mid-attempt
    started_at: float
    duration_ms: float | None
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class NewWebhookDelivery:
    """What a delivery is, recorded with its first attempt (later attempts keep it)."""

    id: str
    event_id: str
    job_id: int
    endpoint: str
    url: str  # redacted: no userinfo or query
    detail_type: str
    account: str | None
    repository: str | None
    image_digest: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class WebhookDeliveryRow:
    """A delivery as listed, with the state of its job (None once the job is purged)."""

    id: str
    event_id: str
    endpoint: str
    url: str  # empty until the first attempt
    detail_type: str
    repository: str | None
    image_digest: str | None
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: float
    last_attempt_at: float | None
    delivered_at: float | None
    job_state: str | None
    job_available_at: float | None
    job_error: str | None


class WebhookStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""

    async def record_webhook_attempt(self, delivery: NewWebhookDelivery,
                                     attempt: WebhookAttempt, *, delivered: bool) -> None:
        """Record one attempt, creating the delivery on its first: one transaction. Recording
        the same attempt number again replaces it (the count stays right); ``delivered``
        sets the delivery's delivered time to the attempt's start, once.

        Raises: StoreError.
        """

    async def webhook_deliveries(self, *, job_kind: str, limit: int,
                                 after: tuple[float, str] | None = None
                                 ) -> list[WebhookDeliveryRow]:
        """Deliveries newest first: recorded ones and the unfinished ``job_kind`` jobs not
        attempted yet. ``after`` is the (created_at, id) of the previous page's last row.

        Raises: StoreError.
        """

    async def webhook_attempts(self, delivery_ids: Sequence[str]
                               ) -> dict[str, list[WebhookAttempt]]:
        """The attempts of each delivery, in attempt order (deliveries with none absent).

        Raises: StoreError.
        """

    async def purge_webhook_deliveries(self, *, before: float, batch: int = 500) -> int:
        """Forget finished deliveries (delivered, or whose job is done or gone) created
        before ``before``, with their attempts, in transactions of ``batch``; return how many.

        Raises: StoreError.
        """


# -- queries ----------------------------------------------------------------------------------

_d, _at, _j = t.webhook_deliveries, t.webhook_attempts, t.jobs


def _insert(d: str, table: sa.Table):
    return (pg.insert if d == "postgresql" else sqlite.insert)(table)


@query
def _upsert_delivery(d):
    stmt = _insert(d, _d).values(**{c: sa.bindparam(c) for c in (
        "id", "event_id", "job_id", "endpoint", "url", "detail_type", "account", "repository",
        "image_digest", "created_at", "last_attempt_at", "last_status_code", "last_error",
        "delivered_at")})
    return stmt.on_conflict_do_update(index_elements=["id"], set_={
        "url": stmt.excluded.url, "last_attempt_at": stmt.excluded.last_attempt_at,
        "last_status_code": stmt.excluded.last_status_code,
        "last_error": stmt.excluded.last_error,
        "delivered_at": sa.func.coalesce(_d.c.delivered_at, stmt.excluded.delivered_at)})


@query
def _upsert_attempt(d):
    stmt = _insert(d, _at).values(**{c: sa.bindparam(c) for c in (
        "delivery_id", "attempt", "started_at", "duration_ms", "status_code", "error")})
    return stmt.on_conflict_do_update(index_elements=["delivery_id", "attempt"], set_={
        c: stmt.excluded[c] for c in ("started_at", "duration_ms", "status_code", "error")})


@query
def _count_attempts(d):
    # Counted, not incremented, so recording an attempt twice counts it once.
    count = sa.select(sa.func.count()).select_from(_at) \
        .where(_at.c.delivery_id == sa.bindparam("delivery")).scalar_subquery()
    return sa.update(_d).where(_d.c.id == sa.bindparam("delivery")).values(attempts=count)


def _payload(d: str, *path: str) -> sa.ColumnElement:
    """A text field of the job's JSON payload."""
    if d == "postgresql":
        return sa.cast(_j.c.payload, pg.JSONB).op("#>>", return_type=sa.Text)(
            sa.literal_column("'{" + ",".join(path) + "}'"))
    return sa.func.json_extract(
        _j.c.payload, sa.literal_column("'$" + "".join(f'."{p}"' for p in path) + "'"),
        type_=sa.Text)


def _page(*, keyset: bool):
    def build(d):
        recorded = sa.select(
            _d.c.id, _d.c.event_id, _d.c.endpoint, _d.c.url, _d.c.detail_type, _d.c.repository,
            _d.c.image_digest, _d.c.attempts, _d.c.last_status_code, _d.c.last_error,
            _d.c.created_at, _d.c.last_attempt_at, _d.c.delivered_at,
            _j.c.state.label("job_state"), _j.c.available_at.label("job_available_at"),
            _j.c.last_error.label("job_error"),
        ).select_from(_d.outerjoin(_j, _j.c.id == _d.c.job_id))
        unattempted = sa.select(
            _payload(d, "delivery"), _payload(d, "event", "id"), _payload(d, "endpoint"),
            sa.literal_column("''"), _payload(d, "event", "detail-type"),
            _payload(d, "event", "detail", "repository-name"),
            _payload(d, "event", "detail", "image-digest"),
            sa.literal_column("0"), sa.cast(sa.null(), sa.Integer), sa.cast(sa.null(), sa.Text),
            _j.c.created_at, sa.cast(sa.null(), Timestamp), sa.cast(sa.null(), Timestamp),
            _j.c.state, _j.c.available_at, _j.c.last_error,
        ).where(_j.c.kind == sa.bindparam("kind"), _j.c.done_at.is_(None),
                ~sa.exists().where(_d.c.job_id == _j.c.id))
        u = sa.union_all(recorded, unattempted).subquery("u")
        stmt = sa.select(*u.c)
        if keyset:
            at = sa.bindparam("at", type_=Timestamp)
            stmt = stmt.where(sa.or_(u.c.created_at < at, sa.and_(
                u.c.created_at == at, u.c.id < sa.bindparam("id"))))
        return stmt.order_by(u.c.created_at.desc(), u.c.id.desc()) \
            .limit(sa.bindparam("limit"))
    return query(build)


_first_page = _page(keyset=False)
_next_page = _page(keyset=True)


@query
def _attempts(d):
    return (sa.select(_at.c.delivery_id, _at.c.attempt, _at.c.started_at, _at.c.duration_ms,
                      _at.c.status_code, _at.c.error)
            .where(_at.c.delivery_id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(_at.c.delivery_id, _at.c.attempt))


@query
def _finished(d):
    job_running = sa.exists().where(_j.c.id == _d.c.job_id, _j.c.done_at.is_(None))
    return (sa.select(_d.c.id)
            .where(_d.c.created_at < sa.bindparam("before", type_=Timestamp),
                   sa.or_(_d.c.delivered_at.is_not(None), ~job_running))
            .order_by(_d.c.created_at).limit(sa.bindparam("batch")).with_for_update())


@query
def _delete_attempts(d):
    return sa.delete(_at).where(_at.c.delivery_id.in_(sa.bindparam("ids", expanding=True)))


@query
def _delete_deliveries(d):
    return sa.delete(_d).where(_d.c.id.in_(sa.bindparam("ids", expanding=True)))


def _purge_batch(conn: Conn, before: float, batch: int) -> int:
    ids = [row[0] for row in conn.all(_finished, before=before, batch=batch)]
    if ids:
        # Explicitly, not by cascade: databases adopted from before Alembic lack it.
        conn.run(_delete_attempts, ids=ids)
        conn.run(_delete_deliveries, ids=ids)
    return len(ids)


class WebhookQueries:
    """``WebhookStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def record_webhook_attempt(self, delivery: NewWebhookDelivery,
                                     attempt: WebhookAttempt, *, delivered: bool) -> None:
        def write(conn: Conn) -> None:
            conn.run(_upsert_delivery, id=delivery.id, event_id=delivery.event_id,
                     job_id=delivery.job_id, endpoint=delivery.endpoint, url=delivery.url,
                     detail_type=delivery.detail_type, account=delivery.account,
                     repository=delivery.repository, image_digest=delivery.image_digest,
                     created_at=delivery.created_at, last_attempt_at=attempt.started_at,
                     last_status_code=attempt.status_code, last_error=attempt.error,
                     delivered_at=attempt.started_at if delivered else None)
            conn.run(_upsert_attempt, delivery_id=delivery.id, attempt=attempt.number,
                     started_at=attempt.started_at, duration_ms=attempt.duration_ms,
                     status_code=attempt.status_code, error=attempt.error)
            conn.run(_count_attempts, delivery=delivery.id)

        await self.db.write(write)

    async def webhook_deliveries(self, *, job_kind: str, limit: int,
                                 after: tuple[float, str] | None = None
                                 ) -> list[WebhookDeliveryRow]:
        def read(conn: Conn) -> list[tuple[Any, ...]]:
            if after is None:
                return conn.all(_first_page, kind=job_kind, limit=limit)
            return conn.all(_next_page, kind=job_kind, limit=limit, at=after[0], id=after[1])

        return [WebhookDeliveryRow(*row) for row in await self.db.read(read)]

    async def webhook_attempts(self, delivery_ids: Sequence[str]
                               ) -> dict[str, list[WebhookAttempt]]:
        if not delivery_ids:
            return {}
        rows = await self.db.read(lambda c: c.all(_attempts, ids=list(delivery_ids)))
        found: dict[str, list[WebhookAttempt]] = {}
        for delivery_id, *attempt in rows:
            found.setdefault(delivery_id, []).append(WebhookAttempt(*attempt))
        return found

    async def purge_webhook_deliveries(self, *, before: float, batch: int = 500) -> int:
        total = 0
        while True:
            purged = await self.db.write(lambda c: _purge_batch(c, before, batch))
            total += purged
            if purged < batch:
                return total
