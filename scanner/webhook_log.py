"""The record of webhook deliveries: one row per (event, endpoint), one per attempt.

Status and the next attempt time are read from the delivery's job, so they never drift from
the queue. Secrets are never stored; URLs are kept without userinfo or query.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from registry.events import Job, JobState
from registry.metadata.webhooks import (
    NewWebhookDelivery, WebhookAttempt, WebhookDeliveryRow, WebhookStore,
)

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


Attempt = WebhookAttempt  # number: the job's claim count (a gap: a worker died mid-attempt)


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


class DeliveryLog:
    """Every delivery attempt, kept by the metadata store (``WebhookStore``)."""

    def __init__(self, store: WebhookStore) -> None:
        self.store = store

    async def record(self, job: Job, *, url: str, status: int | None, error: str | None,
                     now: float, duration_ms: float, delivered: bool = False) -> None:
        """Record one attempt of the delivery ``job`` carries (idempotent per attempt).

        Raises: StoreError.
        """
        event = job.payload["event"]
        detail = event.get("detail", {})
        delivery = NewWebhookDelivery(
            id=job.payload["delivery"], event_id=event["id"], job_id=job.id,
            endpoint=job.payload["endpoint"], url=url, detail_type=event["detail-type"],
            account=event.get("account"), repository=detail.get("repository-name"),
            image_digest=detail.get("image-digest"), created_at=job.created_at)
        attempt = Attempt(number=job.attempts, started_at=now, duration_ms=duration_ms,
                          status_code=status, error=error)
        await self.store.record_webhook_attempt(delivery, attempt, delivered=delivered)

    async def recent(self, *, limit: int = 50, history: bool = False,
                     after: Delivery | None = None) -> list[Delivery]:
        """The most recent deliveries, newest first, queued ones included; ``after``: the
        last delivery of the previous page. With ``history``, each with its attempts.

        Raises: StoreError.
        """
        rows = await self.store.webhook_deliveries(
            job_kind=DELIVER_JOB, limit=limit,
            after=None if after is None else (after.created_at, after.id))
        found = [_delivery(row) for row in rows]
        if history and found:
            attempts = await self.store.webhook_attempts([d.id for d in found])
            found = [dataclasses.replace(d, history=tuple(attempts.get(d.id, ())))
                     for d in found]
        return found

    async def purge(self, *, before: float) -> int:
        """Forget deliveries created before ``before`` that are finished.

        Raises: StoreError.
        """
        return await self.store.purge_webhook_deliveries(before=before)


def _delivery(row: WebhookDeliveryRow) -> Delivery:
    status = delivery_status(row.delivered_at is not None, row.job_state, row.attempts)
    return Delivery(
        id=row.id, event_id=row.event_id, endpoint=row.endpoint, url=row.url,
        detail_type=row.detail_type, repository=row.repository, image_digest=row.image_digest,
        status=status, attempts=row.attempts, last_status_code=row.last_status_code,
        last_error=row.last_error or (row.job_error if status is DeliveryStatus.FAILED else None),
        created_at=row.created_at, last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
        next_attempt_at=row.job_available_at if row.job_state == JobState.QUEUED.value else None)
