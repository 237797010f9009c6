"""WebhookStore contract, on every backend: attempts recorded idempotently, deliveries listed
newest first with their jobs' state (unattempted jobs included) in keyset pages, attempts of a
page in one query, finished deliveries purged in batches."""

from __future__ import annotations

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import query
from registry.metadata.webhooks import NewWebhookDelivery, WebhookAttempt
from registry.metadata.writes import NewJob, apply

KIND = "webhook.deliver"
T0 = 1_700_000_000.0


def payload(delivery: str, *, repository: str = "team/app") -> dict:
    return {"delivery": delivery, "endpoint": "ci", "event": {
        "id": f"event-{delivery}", "detail-type": "ECR Image Action", "account": "123456789012",
        "detail": {"repository-name": repository, "image-digest": "sha256:" + "ab" * 32}}}


async def queue(store, delivery: str, *, at: float, kind: str = KIND) -> int:
    [job_id] = await store.db.write(lambda c: apply(
        c, [NewJob(kind=kind, payload=payload(delivery))], now=at))
    return job_id


@query
def _finish_job(d):
    return sa.update(t.jobs).where(t.jobs.c.id == sa.bindparam("job")).values(
        state=sa.bindparam("state"), done_at=sa.bindparam("done_at"),
        last_error=sa.bindparam("error"))


async def finish(store, job_id: int, state: str, *, at: float, error: str | None = None):
    await store.db.write(lambda c: c.run(_finish_job, job=job_id, state=state, done_at=at,
                                         error=error))


def delivery(delivery_id: str, job_id: int, *, at: float) -> NewWebhookDelivery:
    return NewWebhookDelivery(
        id=delivery_id, event_id=f"event-{delivery_id}", job_id=job_id, endpoint="ci",
        url="https://hooks.example/in", detail_type="ECR Image Action", account="123456789012",
        repository="team/app", image_digest="sha256:" + "ab" * 32, created_at=at)


def attempt(number: int, *, at: float, status: int | None = None,
            error: str | None = None) -> WebhookAttempt:
    return WebhookAttempt(number=number, started_at=at, duration_ms=12.5, status_code=status,
                          error=error)


async def test_attempts_are_recorded_once_each_and_delivery_is_set_once(store):
    job = await queue(store, "d1", at=T0)
    d = delivery("d1", job, at=T0)
    await store.record_webhook_attempt(d, attempt(1, at=T0 + 1, status=503), delivered=False)
    await store.record_webhook_attempt(d, attempt(1, at=T0 + 1, status=503), delivered=False)
    await store.record_webhook_attempt(d, attempt(2, at=T0 + 9, status=200), delivered=True)
    await store.record_webhook_attempt(d, attempt(3, at=T0 + 20, status=200), delivered=True)
    [row] = await store.webhook_deliveries(job_kind=KIND, limit=10)
    assert (row.id, row.attempts, row.last_status_code) == ("d1", 3, 200)
    assert row.delivered_at == T0 + 9  # the first success, kept
    assert (row.last_attempt_at, row.created_at) == (T0 + 20, T0)
    assert (row.job_state, row.job_available_at) == ("queued", T0)
    history = await store.webhook_attempts(["d1", "unknown"])
    assert history == {"d1": [attempt(1, at=T0 + 1, status=503),
                              attempt(2, at=T0 + 9, status=200),
                              attempt(3, at=T0 + 20, status=200)]}


async def test_unattempted_jobs_are_listed_from_their_payload(store):
    await queue(store, "waiting", at=T0 + 5)
    await queue(store, "other-kind", at=T0 + 6, kind="scan")
    done = await queue(store, "gone", at=T0 + 7)
    await finish(store, done, "failed", at=T0 + 8, error="endpoint not configured")
    [row] = await store.webhook_deliveries(job_kind=KIND, limit=10)
    assert (row.id, row.event_id, row.endpoint, row.url) == ("waiting", "event-waiting", "ci", "")
    assert (row.detail_type, row.repository) == ("ECR Image Action", "team/app")
    assert row.image_digest == "sha256:" + "ab" * 32
    assert (row.attempts, row.last_status_code, row.last_error) == (0, None, None)
    assert (row.created_at, row.last_attempt_at, row.delivered_at) == (T0 + 5, None, None)
    assert (row.job_state, row.job_available_at, row.job_error) == ("queued", T0 + 5, None)


async def test_pages_cover_every_delivery_once_newest_first(store):
    expected = []
    for i in range(7):
        at = T0 + (i // 2)  # pairs share a creation time: the id breaks the tie
        job = await queue(store, f"d{i}", at=at)
        if i % 3:  # some attempted, some still only queued
            await store.record_webhook_attempt(delivery(f"d{i}", job, at=at),
                                               attempt(1, at=at + 1, status=500),
                                               delivered=False)
        expected.append((at, f"d{i}"))
    expected.sort(reverse=True)
    seen, after = [], None
    while True:
        page = await store.webhook_deliveries(job_kind=KIND, limit=3, after=after)
        seen += [(row.created_at, row.id) for row in page]
        if len(page) < 3:
            break
        after = (page[-1].created_at, page[-1].id)
    assert seen == expected


async def test_purge_forgets_finished_old_deliveries_with_their_attempts(store):
    cases = {  # delivery: (created, job outcome, delivered, kept)
        "old-delivered": (T0, "succeeded", True, False),
        "old-failed": (T0, "failed", False, False),
        "old-job-purged": (T0, None, False, False),
        "old-retrying": (T0, "running", False, True),
        "new-delivered": (T0 + 100, "succeeded", True, True),
    }
    purged_jobs = []
    for name, (at, outcome, delivered, _) in cases.items():
        job = await queue(store, name, at=at)
        await store.record_webhook_attempt(delivery(name, job, at=at),
                                           attempt(1, at=at + 1, status=200 if delivered
                                                   else 503), delivered=delivered)
        if outcome in ("failed", "succeeded"):
            await finish(store, job, outcome, at=at + 2)
        elif outcome is None:
            purged_jobs.append(job)
    for job in purged_jobs:  # after every insert: a job id is never reused
        await store.db.write(lambda c, j=job: c.run(_delete_job, job=j))
    purged = await store.purge_webhook_deliveries(before=T0 + 50, batch=2)
    assert purged == 3
    kept = {row.id for row in await store.webhook_deliveries(job_kind=KIND, limit=10)}
    assert kept == {name for name, case in cases.items() if case[3]}
    assert set(await store.webhook_attempts(list(cases))) == kept
    assert await store.purge_webhook_deliveries(before=T0 + 50) == 0


@query
def _delete_job(d):
    return sa.delete(t.jobs).where(t.jobs.c.id == sa.bindparam("job"))
