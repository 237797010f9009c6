"""The record of webhook deliveries: one row per (event, endpoint), one per attempt.

Status and the next attempt time are read from the delivery's job, so they never drift from
the queue. Secrets are never stored; URLs are kept without userinfo or query.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any

from registry.events import Job, JobState

DELIVER_JOB = "webhook.deliver"

class DeliveryStatus(str, enum.Enum):
    PENDING = "PENDING"  # queued, never attempted
    SENDING = "SENDING"  # a worker holds it now
    RETRYING = "RETRYING"  # attempted, waiting for the next attempt
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # refused, endpoint gone, or attempts exhausted


def delivery_status(delivered: bool, job_state: str | None, attempts: int) -> DeliveryStatus:
    """Derived, not stored: the job row is the single source of truth while it exists, and
    only finished jobs are purged (so a missing job that never delivered has failed)."""
    if delivered:
        return DeliveryStatus.DELIVERED
    if job_state in (None, JobState.FAILED.value, JobState.SUCCEEDED.value):
        return DeliveryStatus.FAILED
    if job_state == JobState.LEASED.value:
        return DeliveryStatus.SENDING
    return DeliveryStatus.RETRYING if attempts else DeliveryStatus.PENDING


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int  # the job's claim count: a gap means a worker died mid-attempt
    started_at: float
    duration_ms: float | None
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    event_id: str
    endpoint: str
    url: str  # redacted; empty until the first attempt
    detail_type: str
    repository: str | None
    image_digest: str | None
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: float
    last_attempt_at: float | None
    next_attempt_at: float | None
    delivered_at: float | None
    history: tuple[Attempt, ...] = ()


_DELIVERY_COLUMNS = ("d.id, d.event_id, d.endpoint, d.url, d.detail_type, d.repository, "
                     "d.image_digest, d.attempts, d.last_status_code, d.last_error, "
                     "d.created_at, d.last_attempt_at, d.delivered_at, j.state, j.available_at, "
                     "j.last_error")


class DeliveryLog:
    """Every delivery attempt, in the metadata database (tables of schema migration 50)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def record(self, job: Job, *, url: str, status: int | None, error: str | None,
                     now: float, duration_ms: float, delivered: bool = False) -> None:
        """Record one attempt of the delivery ``job`` carries (idempotent per attempt)."""
        event = job.payload["event"]
        detail = event.get("detail", {})
        delivery = job.payload["delivery"]

        def write(conn) -> None:
            conn.execute(
                "INSERT INTO webhook_deliveries (id, event_id, job_id, endpoint, url, "
                "detail_type, account, repository, image_digest, created_at, last_attempt_at, "
                "last_status_code, last_error, delivered_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "url = excluded.url, last_attempt_at = excluded.last_attempt_at, "
                "last_status_code = excluded.last_status_code, last_error = excluded.last_error, "
                "delivered_at = COALESCE(webhook_deliveries.delivered_at, excluded.delivered_at)",
                (delivery, event["id"], job.id, job.payload["endpoint"], url,
                 event["detail-type"], event.get("account"), detail.get("repository-name"),
                 detail.get("image-digest"), job.created_at, now, status, error,
                 now if delivered else None))
            conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, "
                "status_code, error) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) "
                "DO UPDATE SET started_at = excluded.started_at, status_code = "
                "excluded.status_code, error = excluded.error, duration_ms = excluded.duration_ms",
                (delivery, job.attempts, now, duration_ms, status, error))
            # Counted, not incremented, so recording an attempt twice counts it once.
            conn.execute("UPDATE webhook_deliveries SET attempts = (SELECT count(*) FROM "
                         "webhook_attempts WHERE delivery_id = ?) WHERE id = ?",
                         (delivery, delivery))

        await self.store.transaction(write)

    async def recent(self, *, limit: int = 50, history: bool = False) -> list[Delivery]:
        """The most recent deliveries, newest first, queued ones included."""
        return await self.store.transaction(lambda conn: self._list(conn, limit, history))

    def _list(self, conn, limit: int, history: bool) -> list[Delivery]:
        found = []
        for r in conn.execute(f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d LEFT JOIN "
                              "jobs j ON j.id = d.job_id ORDER BY d.created_at DESC, d.id "
                              "LIMIT ?", (limit,)):
            status = delivery_status(r[12] is not None, r[13], r[7])
            found.append(Delivery(
                id=r[0], event_id=r[1], endpoint=r[2], url=r[3], detail_type=r[4],
                repository=r[5], image_digest=r[6], status=status, attempts=r[7],
                last_status_code=r[8],
                last_error=r[9] or (r[15] if status is DeliveryStatus.FAILED else None),
                created_at=r[10], last_attempt_at=r[11], delivered_at=r[12],
                next_attempt_at=r[14] if r[13] == JobState.QUEUED.value else None))
        for job_id, payload, created_at, available_at, state in conn.execute(
                "SELECT id, payload, created_at, available_at, state FROM jobs WHERE kind = ? "
                "AND done_at IS NULL AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d "
                "WHERE d.job_id = jobs.id) ORDER BY created_at DESC LIMIT ?",
                (DELIVER_JOB, limit)):
            p = json.loads(payload)
            detail = p["event"].get("detail", {})
            found.append(Delivery(
                p["delivery"], p["event"]["id"], p["endpoint"], "", p["event"]["detail-type"],
                detail.get("repository-name"), detail.get("image-digest"),
                delivery_status(False, state, 0), 0, None, None, created_at, None,
                available_at if state == JobState.QUEUED.value else None, None))
        found.sort(key=lambda d: d.created_at, reverse=True)
        found = found[:limit]
        if history:
            found = [self._with_history(conn, d) for d in found]
        return found

    @staticmethod
    def _with_history(conn, delivery: Delivery) -> Delivery:
        rows = conn.execute("SELECT attempt, started_at, duration_ms, status_code, error FROM "
                            "webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
                            (delivery.id,)).fetchall()
        return dataclasses.replace(delivery, history=tuple(Attempt(*r) for r in rows))

    async def purge(self, *, before: float) -> int:
        """Forget deliveries created before ``before`` that are finished."""
        return await self.store.transaction(lambda conn: conn.execute(
            "DELETE FROM webhook_deliveries WHERE created_at < ? AND (delivered_at IS NOT NULL "
            "OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = webhook_deliveries.job_id "
            "AND j.done_at IS NULL))", (before,)).rowcount)
