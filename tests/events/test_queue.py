"""The job queue's contract: ordering, leases, fencing, cross-process claims, state machine."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from registry.config import load_config
from registry.events import JobQueue, JobState, transition
from registry.metadata.factory import open_store
from registry.metadata.writes import NewJob, apply

SCAN = "scan.image"


# -- the state machine ------------------------------------------------------------------------

TRANSITIONS = [
    # (state, action, next state or None for "not allowed", why)
    (JobState.QUEUED, "claim", JobState.LEASED, "a due job is leased"),
    (JobState.LEASED, "claim", JobState.LEASED, "an expired lease is taken over"),
    (JobState.LEASED, "extend", JobState.LEASED, "a long job keeps its lease"),
    (JobState.LEASED, "complete", JobState.SUCCEEDED, "the handler returned"),
    (JobState.LEASED, "retry", JobState.QUEUED, "a retryable error waits for backoff"),
    (JobState.LEASED, "release", JobState.QUEUED, "a stopping worker gives it back"),
    (JobState.LEASED, "fail", JobState.FAILED, "a permanent error or attempts exhausted"),
    (JobState.QUEUED, "complete", None, "only the lease holder finishes a job"),
    (JobState.QUEUED, "fail", None, "only the lease holder fails a job"),
    (JobState.SUCCEEDED, "claim", None, "finished jobs never run again"),
    (JobState.FAILED, "claim", None, "failed jobs stay for inspection"),
    (JobState.FAILED, "retry", None, "failed is terminal"),
]


@pytest.mark.parametrize("state, action, expected, why", TRANSITIONS,
                         ids=[t[3] for t in TRANSITIONS])
def test_transition_table(state, action, expected, why):
    if expected is None:
        with pytest.raises(ValueError):
            transition(state, action)
    else:
        assert transition(state, action) is expected


# -- ordering ---------------------------------------------------------------------------------

async def test_push_scans_go_ahead_of_bulk_rescans(queue, clock):
    rescans = []
    for n in range(3):
        rescans.append(await queue.enqueue(SCAN, {"n": n}, priority=0))
        clock.advance(1)
    manual = await queue.enqueue(SCAN, {"manual": True}, priority=5)
    clock.advance(1)
    push = await queue.enqueue(SCAN, {"push": True}, priority=10)

    first = await queue.claim([SCAN], "w1", lease_seconds=60, limit=1)
    rest = await queue.claim([SCAN], "w1", lease_seconds=60, limit=10)

    assert [j.id for j in first] == [push]
    assert [j.id for j in rest] == [manual, *rescans]  # then oldest first within a priority
    assert all(j.state is JobState.LEASED and j.attempts == 1 for j in first + rest)


async def test_only_due_jobs_of_the_asked_kinds_are_claimed(queue, clock):
    later = await queue.enqueue(SCAN, {}, available_at=clock() + 30)
    await queue.enqueue("webhook.deliver", {})
    assert await queue.claim([SCAN], "w", lease_seconds=10, limit=5) == []
    clock.advance(30)
    assert [j.id for j in await queue.claim([SCAN], "w", lease_seconds=10, limit=5)] == [later]


async def test_a_job_written_in_a_change_commits_with_it(store, queue, clock):
    def change(conn):
        apply(conn, [NewJob(SCAN, {"digest": "sha256:aa"}, priority=5)], now=clock())
        raise RuntimeError("the change is refused")

    with pytest.raises(RuntimeError):
        await store.db.write(change)
    assert await queue.claim([SCAN], "w", lease_seconds=10, limit=5) == []


async def test_the_same_idempotency_key_queues_one_job(queue):
    first = await queue.enqueue(SCAN, {"n": 1}, idempotency_key="ecr:StartImageScan:abc")
    again = await queue.enqueue(SCAN, {"n": 2}, idempotency_key="ecr:StartImageScan:abc")
    assert first is not None and again is None
    assert (await queue.get(first)).idempotency_key == "ecr:StartImageScan:abc"


# -- leases -----------------------------------------------------------------------------------

async def test_an_expired_lease_replays_the_job_after_a_crash(queue, clock):
    job_id = await queue.enqueue(SCAN, {"digest": "sha256:aa"})
    [crashed] = await queue.claim([SCAN], "worker-a", lease_seconds=30, limit=1)
    # worker-a dies here: it never completes, retries or releases the job.
    clock.advance(29)
    assert await queue.claim([SCAN], "worker-b", lease_seconds=30, limit=1) == []
    clock.advance(2)
    [replayed] = await queue.claim([SCAN], "worker-b", lease_seconds=30, limit=1)

    assert replayed.id == job_id and replayed.payload == {"digest": "sha256:aa"}
    assert replayed.attempts == 2 and replayed.lease_owner == "worker-b"
    assert await queue.complete(crashed) is False  # fenced: a stale claim changes nothing
    assert await queue.complete(replayed) is True
    assert (await queue.get(job_id)).state is JobState.SUCCEEDED


async def test_extend_lease_keeps_other_claimers_out(queue, clock):
    await queue.enqueue(SCAN, {})
    [job] = await queue.claim([SCAN], "a", lease_seconds=30, limit=1)
    for _ in range(3):
        clock.advance(20)
        assert await queue.extend_lease(job) is True
    assert await queue.claim([SCAN], "b", lease_seconds=30, limit=1) == []
    assert (await queue.get(job.id)).lease_until == clock() + 30


async def test_retry_fail_and_release_record_their_outcome(queue, clock):
    ids = [await queue.enqueue(SCAN, {"n": n}) for n in range(3)]
    retried, failed, released = await queue.claim([SCAN], "w", lease_seconds=30, limit=3)
    assert await queue.retry(retried, "HTTP 503", delay=12.5)
    assert await queue.fail(failed, "image is gone")
    assert await queue.release(released)

    r, f, rel = [await queue.get(i) for i in ids]
    assert (r.state, r.available_at, r.last_error, r.lease_owner) == (
        JobState.QUEUED, clock() + 12.5, "HTTP 503", None)
    assert (f.state, f.done_at, f.last_error) == (JobState.FAILED, clock(), "image is gone")
    assert (rel.state, rel.attempts, rel.available_at) == (JobState.QUEUED, 0, clock())
    assert await queue.retry(retried, "again", delay=1) is False  # no longer leased by us


async def test_purge_forgets_old_finished_jobs_only(queue, clock):
    done, failed, pending = [await queue.enqueue(SCAN, {"n": n}) for n in range(3)]
    a, b, _ = await queue.claim([SCAN], "w", lease_seconds=30, limit=3)
    await queue.complete(a)
    await queue.fail(b, "boom")
    clock.advance(100)
    assert await queue.purge(succeeded_before=clock() - 50, failed_before=clock() - 500) == 1
    assert await queue.get(done) is None
    assert (await queue.get(failed)).state is JobState.FAILED
    assert (await queue.get(pending)).state is JobState.LEASED


# -- claims across processes ------------------------------------------------------------------

def _claim_all(data_dir: str, url: str, owner: str, barrier, results) -> None:
    async def run() -> list[int]:
        store = open_store(load_config(None, environ={}, overrides={
            "data_dir": data_dir, "metadata.url": url}), prepare=False)
        queue = JobQueue(store)
        taken: list[int] = []
        barrier.wait()
        while jobs := await queue.claim([SCAN], owner, lease_seconds=300, limit=2):
            taken.extend(j.id for j in jobs)
            time.sleep(0.001)  # let the other process take its turn at the write lock
        await store.close()
        return taken

    results.put((owner, asyncio.run(run())))


async def test_two_processes_never_claim_the_same_job(store, queue, metadata_config):
    expected = {await queue.enqueue(SCAN, {"n": n}) for n in range(300)}
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(
        str(metadata_config.data_dir), metadata_config.metadata.url, owner, barrier, results))
             for owner in ("proc-a", "proc-b")]
    for p in procs:
        p.start()
    got = dict(await asyncio.to_thread(lambda: [results.get(timeout=60) for _ in procs]))
    for p in procs:
        p.join(timeout=10)

    a, b = set(got["proc-a"]), set(got["proc-b"])
    assert len(a) == len(got["proc-a"]) and len(b) == len(got["proc-b"])
    assert not a & b, "a job was claimed by both processes"
    assert a | b == expected
    assert a and b, "the processes did not actually contend"
