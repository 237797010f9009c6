"""The Worker: outcomes, backoff, attempt limits, concurrency, lease renewal, stopping.

Time is a FakeClock: backoff and lease renewal are observed by moving it, never by waiting.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from registry.events import JobState, PermanentError, RetryableError
from registry.worker import RetryPolicy, Worker
from tests.events.fakes import settle

KIND = "scan.image"


def make_worker(queue, clock, handler, **options) -> Worker:
    options.setdefault("retry", RetryPolicy(base=2.0, cap=60.0, max_attempts=5))
    return Worker(queue, {KIND: handler}, clock=clock, sleep=clock.sleep,
                  rng=random.Random(1234), **options)


# -- backoff ----------------------------------------------------------------------------------

def test_full_jitter_backoff_stays_within_the_capped_exponential_bound():
    policy = RetryPolicy(base=1.0, cap=60.0, max_attempts=10)
    rng = random.Random(42)
    for attempt in range(1, 11):
        bound = min(60.0, 2.0 ** (attempt - 1))
        samples = [policy.delay(attempt, rng) for _ in range(500)]
        assert all(0.0 <= s <= bound for s in samples)
        assert max(samples) > 0.9 * bound and min(samples) < 0.1 * bound  # spread over all of it
    again = random.Random(42)
    assert policy.delay(1, again) == RetryPolicy(1.0, 60.0, 10).delay(1, random.Random(42))


async def test_retryable_errors_back_off_then_fail_after_max_attempts(queue, clock):
    calls = []

    async def flaky(job):
        calls.append(clock())
        raise RetryableError("registry busy")

    worker = make_worker(queue, clock, flaky)
    job_id = await queue.enqueue(KIND, {})
    for attempt in range(1, 6):
        assert await worker.run_until_idle() == 1
        job = await queue.get(job_id)
        if attempt == 5:
            break
        wait = job.available_at - clock()
        assert job.state is JobState.QUEUED and job.last_error == "registry busy"
        assert 0.0 <= wait <= min(60.0, 2.0 * 2 ** (attempt - 1))
        assert await worker.run_until_idle() == 0 or wait == 0  # nothing runs before it is due
        clock.advance(wait)

    assert len(calls) == 5
    assert job.state is JobState.FAILED and job.attempts == 5
    assert job.last_error == "registry busy (gave up after 5 attempts)"
    clock.advance(3600)
    assert await worker.run_until_idle() == 0


async def test_retry_after_is_a_lower_bound_on_the_wait(queue, clock):
    async def throttled(job):
        raise RetryableError("HTTP 429", retry_after=45)

    worker = make_worker(queue, clock, throttled)
    job_id = await queue.enqueue(KIND, {})
    await worker.run_until_idle()
    assert (await queue.get(job_id)).available_at - clock() == 45


async def test_permanent_error_fails_at_once_and_keeps_the_reason(queue, clock):
    calls = []

    async def refuse(job):
        calls.append(job.id)
        raise PermanentError("HTTP 400")

    worker = make_worker(queue, clock, refuse)
    job_id = await queue.enqueue(KIND, {})
    await worker.run_until_idle()
    clock.advance(3600)
    await worker.run_until_idle()
    job = await queue.get(job_id)
    assert calls == [job_id]
    assert (job.state, job.last_error, job.attempts) == (JobState.FAILED, "HTTP 400", 1)


async def test_unknown_exceptions_are_retried(queue, clock, caplog):
    async def buggy(job):
        if job.attempts == 1:
            raise KeyError("digest")

    worker = make_worker(queue, clock, buggy)
    job_id = await queue.enqueue(KIND, {})
    await worker.run_until_idle()
    job = await queue.get(job_id)
    assert job.state is JobState.QUEUED and job.last_error == "KeyError: 'digest'"
    assert any(r.exc_info for r in caplog.records)  # a bug keeps its traceback in the log
    clock.advance(job.available_at - clock())
    await worker.run_until_idle()
    assert (await queue.get(job_id)).state is JobState.SUCCEEDED


async def test_a_job_that_keeps_killing_its_worker_ends_failed(queue, clock):
    job_id = await queue.enqueue(KIND, {})
    for _ in range(5):  # five claims that never report back: the worker died each time
        assert await queue.claim([KIND], "doomed", lease_seconds=10, limit=1)
        clock.advance(11)
    ran = []

    async def handler(job):
        ran.append(job.id)

    await make_worker(queue, clock, handler).run_until_idle()
    job = await queue.get(job_id)
    assert ran == [] and job.state is JobState.FAILED
    assert "gave up after 5 attempts" in job.last_error


# -- concurrency, leases, stopping ------------------------------------------------------------

async def test_concurrency_is_bounded_and_only_running_jobs_are_leased(queue, clock):
    gate, running, peak = asyncio.Event(), set(), []

    async def slow(job):
        running.add(job.id)
        peak.append(len(running))
        await gate.wait()
        running.discard(job.id)

    ids = [await queue.enqueue(KIND, {"n": n}) for n in range(5)]
    worker = make_worker(queue, clock, slow, concurrency=2)
    task = asyncio.create_task(worker.run_until_idle())
    await settle(lambda: len(running) == 2)
    states = [(await queue.get(i)).state for i in ids]
    assert states.count(JobState.LEASED) == 2  # the rest wait unclaimed, their leases unspent
    gate.set()
    assert await task == 5
    assert max(peak) == 2
    assert {(await queue.get(i)).state for i in ids} == {JobState.SUCCEEDED}


async def test_long_jobs_renew_their_lease(queue, clock):
    gate, started = asyncio.Event(), asyncio.Event()

    async def long_scan(job):
        started.set()
        await gate.wait()

    job_id = await queue.enqueue(KIND, {})
    worker = make_worker(queue, clock, long_scan, lease_seconds=30)
    task = asyncio.create_task(worker.run_until_idle())
    await started.wait()
    for _ in range(9):  # 90 s in 10 s steps: three lease lengths
        await settle(lambda: clock.waiting() == 1)  # the renewer is parked until its next turn
        await clock.tick(10)
    await settle(lambda: clock.waiting() == 1)
    job = await queue.get(job_id)
    assert job.lease_until >= clock() + 10
    assert await queue.claim([KIND], "other", lease_seconds=30, limit=1) == []
    gate.set()
    await task
    assert (await queue.get(job_id)).state is JobState.SUCCEEDED


async def test_stop_lets_running_jobs_finish_within_grace(queue, clock):
    async def quick(job):
        await asyncio.sleep(0)

    job_id = await queue.enqueue(KIND, {})
    worker = make_worker(queue, clock, quick)
    runner = asyncio.create_task(worker.run())
    await settle(lambda: not runner.done())
    await clock.tick(1)
    await worker.stop(grace=5)
    await runner
    assert (await queue.get(job_id)).state is JobState.SUCCEEDED


async def test_stop_releases_jobs_still_running_after_grace(queue, clock):
    started = asyncio.Event()

    async def stuck(job):
        started.set()
        await asyncio.Event().wait()

    job_id = await queue.enqueue(KIND, {})
    worker = make_worker(queue, clock, stuck)
    runner = asyncio.create_task(worker.run())
    await started.wait()
    await worker.stop(grace=0.001)
    await runner
    job = await queue.get(job_id)
    assert (job.state, job.attempts, job.available_at) == (JobState.QUEUED, 0, clock())


async def test_run_polls_for_work_enqueued_later(queue, clock):
    done = asyncio.Event()

    async def handler(job):
        done.set()

    worker = make_worker(queue, clock, handler, poll_interval=2.0)
    runner = asyncio.create_task(worker.run())
    await clock.tick(0)
    await queue.enqueue(KIND, {})
    await clock.tick(2)
    await asyncio.wait_for(done.wait(), timeout=5)
    await worker.stop()
    await runner


def test_worker_rejects_nonsense_settings(queue, clock):
    with pytest.raises(ValueError):
        make_worker(queue, clock, None, concurrency=0)
