"""Jobs, nodes and named leases on every backend: idempotent inserts, ids never reused,
disjoint concurrent claims, leases on the database clock, dead nodes' jobs replayed once."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from registry.events import JobState
from registry.metadata.database import query
from registry.metadata.dbclock import db_time
from registry.metadata.writes import NewJob

SCAN = "scan.image"
T0 = 1_700_000_000.0


@query
def _db_now(d):
    return sa.select(db_time(None))


async def test_the_database_clock_is_the_epoch_in_seconds(store):
    before = time.time()
    now = await store.db.read(lambda c: c.scalar(_db_now))
    assert before - 1 < now < time.time() + 1


async def test_an_idempotency_key_yields_one_job_per_kind(store):
    first = await store.enqueue_job(NewJob(SCAN, {"n": 1}, idempotency_key="push:7"), now=T0)
    again = await store.enqueue_job(NewJob(SCAN, {"n": 2}, idempotency_key="push:7"), now=T0)
    other_kind = await store.enqueue_job(NewJob("webhook.deliver", {}, idempotency_key="push:7"),
                                         now=T0)
    keyless = [await store.enqueue_job(NewJob(SCAN, {}), now=T0) for _ in range(2)]
    assert first is not None and again is None
    assert other_kind is not None and None not in keyless and len(set(keyless)) == 2
    assert (await store.get_job(first)).payload == {"n": 1}


async def test_job_ids_are_never_reused_after_a_purge(store):
    ids = [await store.enqueue_job(NewJob(SCAN, {"n": n}), now=T0) for n in range(3)]
    claimed = await store.claim_jobs([SCAN], "node-a", lease_seconds=30, limit=3, now=T0)
    for job in claimed:
        assert await store.settle_job(job, "complete", now=T0)
    assert await store.purge_jobs(succeeded_before=T0 + 1, failed_before=T0) == 3
    newer = await store.enqueue_job(NewJob(SCAN, {}), now=T0)
    assert newer > max(ids)


async def test_a_new_job_is_due_at_once_even_from_a_clock_running_ahead(store):
    """Due at the earlier of the writer's clock and the database's: a node whose clock is an
    hour fast does not hide its jobs from the others for an hour."""
    job_id = await store.enqueue_job(NewJob(SCAN, {}), now=time.time() + 3600)
    assert await store.has_ready_jobs([SCAN]) is True
    [job] = await store.claim_jobs([SCAN], "node-b", lease_seconds=30, limit=1)
    assert job.id == job_id


async def test_claims_order_by_priority_then_due_time(store):
    low = await store.enqueue_job(NewJob(SCAN, {}, priority=0), now=T0)
    later = await store.enqueue_job(NewJob(SCAN, {}, priority=10, available_at=T0 + 5), now=T0)
    high = await store.enqueue_job(NewJob(SCAN, {}, priority=10), now=T0)
    jobs = await store.claim_jobs([SCAN], "n", lease_seconds=30, limit=5, now=T0 + 10)
    assert [j.id for j in jobs] == [high, later, low]
    assert all(j.state is JobState.LEASED and j.lease_owner == "n" for j in jobs)
    assert {j.lease_until for j in jobs} == {T0 + 40}


async def test_two_stores_claiming_concurrently_take_disjoint_jobs(store, store_factory):
    other = store_factory()
    expected = {await store.enqueue_job(NewJob(SCAN, {"n": n}), now=T0) for n in range(60)}
    taken: dict[str, list[int]] = {"a": [], "b": []}

    async def claim_all(s, owner):
        while jobs := await s.claim_jobs([SCAN], owner, lease_seconds=300, limit=3,
                                         now=T0):
            taken[owner].extend(j.id for j in jobs)
            await asyncio.sleep(0)

    await asyncio.gather(claim_all(store, "a"), claim_all(other, "b"))
    a, b = set(taken["a"]), set(taken["b"])
    assert len(a) == len(taken["a"]) and len(b) == len(taken["b"])
    assert not a & b and a | b == expected


async def test_a_claim_in_flight_is_skipped_not_waited_for(store, store_factory, backend):
    """PostgreSQL: rows a concurrent claim has locked are skipped (SKIP LOCKED), the other
    claimer goes on at once. SQLite: the write lock serialises claims, the second waits."""
    from registry.metadata.jobs import _select_ready

    other = store_factory()
    ids = [await store.enqueue_job(NewJob(SCAN, {"n": n}), now=T0) for n in range(2)]
    locked, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold(c):
        rows = c.all(_select_ready, kinds=[SCAN], now=T0, limit=1)
        loop.call_soon_threadsafe(locked.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        return rows

    holder = asyncio.create_task(store.db.write(hold))
    await locked.wait()
    claim = asyncio.create_task(other.claim_jobs([SCAN], "b", lease_seconds=30, limit=2,
                                                 now=T0))
    await asyncio.sleep(0.5)
    assert claim.done() is (backend == "postgresql")
    release.set()
    assert [r[0] for r in await holder] == [ids[0]]
    expected = {"postgresql": [ids[1]], "sqlite": ids}[backend]
    assert [j.id for j in await claim] == expected


async def test_leases_run_on_the_database_clock(store, store_factory):
    """No clock injected: the lease ends by database time, seen the same by every node."""
    other = store_factory()
    await store.enqueue_job(NewJob(SCAN, {}))
    [job] = await store.claim_jobs([SCAN], "node-a", lease_seconds=0.4, limit=1)
    db_now = await store.db.read(lambda c: c.scalar(_db_now))
    assert job.lease_until == pytest.approx(db_now + 0.4, abs=0.3)
    assert await other.claim_jobs([SCAN], "node-b", lease_seconds=30, limit=1) == []
    await asyncio.sleep(0.5)
    [again] = await other.claim_jobs([SCAN], "node-b", lease_seconds=30, limit=1)
    assert (again.id, again.attempts) == (job.id, 2)
    assert await store.settle_job(job, "extend", lease_seconds=30) is False  # fenced


OUTCOMES = [
    # (action, options, state, check)
    ("complete", {}, JobState.SUCCEEDED, lambda j: j.done_at == T0 + 1),
    ("retry", {"error": "HTTP 503", "delay": 12.5}, JobState.QUEUED,
     lambda j: (j.available_at, j.last_error, j.lease_owner) == (T0 + 13.5, "HTTP 503", None)),
    ("fail", {"error": "gone"}, JobState.FAILED, lambda j: (j.done_at, j.last_error) ==
     (T0 + 1, "gone")),
    ("release", {}, JobState.QUEUED, lambda j: (j.attempts, j.available_at) == (1, T0 + 1)),
    ("extend", {"lease_seconds": 30}, JobState.LEASED, lambda j: j.lease_until == T0 + 31),
]


@pytest.mark.parametrize("action, options, state, check", OUTCOMES,
                         ids=[o[0] for o in OUTCOMES])
async def test_outcomes_are_fenced_on_owner_and_attempt(store, action, options, state, check):
    job_id = await store.enqueue_job(NewJob(SCAN, {}), now=T0)
    [stale] = await store.claim_jobs([SCAN], "node-a", lease_seconds=0.5, limit=1, now=T0)
    [job] = await store.claim_jobs([SCAN], "node-b", lease_seconds=30, limit=1, now=T0 + 0.5)
    assert await store.settle_job(stale, action, now=T0 + 1, **options) is False
    assert await store.settle_job(job, action, now=T0 + 1, **options) is True
    after = await store.get_job(job_id)
    assert after.state is state and check(after)


async def test_a_dead_nodes_job_replays_exactly_once_on_another(store, store_factory):
    other = store_factory()
    for node, s in (("node-a", store), ("node-b", other)):
        await s.heartbeat(node, hostname="same-host", pid=1, now=T0)
    job_id = await store.enqueue_job(NewJob(SCAN, {}), now=T0)
    [held] = await store.claim_jobs([SCAN], "node-a", lease_seconds=600, limit=1, now=T0)

    # node-a stops heartbeating; node-b keeps going. Same hostname, same PID: irrelevant.
    await other.heartbeat("node-b", hostname="same-host", pid=1, now=T0 + 20)
    assert await other.expire_dead_nodes(30, now=T0 + 20) == 0
    await other.heartbeat("node-b", hostname="same-host", pid=1, now=T0 + 31)
    assert await other.claim_jobs([SCAN], "node-b", lease_seconds=600, limit=1,
                                  now=T0 + 31) == []
    assert await other.expire_dead_nodes(30, now=T0 + 31) == 1
    assert [n.id for n in await other.list_nodes()] == ["node-b"]
    assert await store.expire_dead_nodes(30, now=T0 + 31) == 0  # done once, by one node

    claims = await asyncio.gather(*(s.claim_jobs([SCAN], n, lease_seconds=600, limit=5,
                                                 now=T0 + 31)
                                    for s, n in ((store, "node-b"), (other, "node-b"))))
    replayed = [j for jobs in claims for j in jobs]
    assert [(j.id, j.attempts) for j in replayed] == [(job_id, 2)]
    assert await store.settle_job(held, "complete", now=T0 + 32) is False


async def test_named_leases_have_one_holder_and_end_with_their_node(store, store_factory):
    other = store_factory()
    assert await store.acquire_lease("gc", "node-a", ttl=60, now=T0) is True
    assert await other.acquire_lease("gc", "node-b", ttl=60, now=T0 + 10) is False
    assert await store.acquire_lease("gc", "node-a", ttl=60, now=T0 + 50) is True  # renewal
    assert await other.acquire_lease("gc", "node-b", ttl=60, now=T0 + 100) is False
    assert await other.acquire_lease("gc", "node-b", ttl=60, now=T0 + 111) is True

    await other.heartbeat("node-b", hostname="h", pid=2, now=T0 + 111)
    assert await store.expire_dead_nodes(30, now=T0 + 150) == 0
    assert await store.acquire_lease("gc", "node-a", ttl=60, now=T0 + 150) is True


async def test_named_leases_on_the_database_clock(store, store_factory):
    other = store_factory()
    assert await store.acquire_lease("scrub", "node-a", ttl=0.3) is True
    assert await other.acquire_lease("scrub", "node-b", ttl=0.3) is False
    await asyncio.sleep(0.4)
    assert await other.acquire_lease("scrub", "node-b", ttl=0.3) is True


async def test_job_inserts_wake_waiting_workers(store):
    waiter = asyncio.create_task(store.wait_for_jobs(5.0))
    await asyncio.sleep(0.2)
    await store.enqueue_job(NewJob(SCAN, {}))
    assert await asyncio.wait_for(waiter, 5.0) is True


async def test_a_released_lease_is_free_at_once_and_only_its_owner_releases_it(
        store, store_factory):
    other = store_factory()
    assert await store.acquire_lease("upload:s1", "hold-1", ttl=60) is True
    await other.release_lease("upload:s1", "hold-2")  # not the owner: nothing changes
    assert await other.acquire_lease("upload:s1", "hold-2", ttl=60) is False
    await store.release_lease("upload:s1", "hold-1")
    assert await asyncio.to_thread(other.acquire_lease_sync, "upload:s1", "hold-2",
                                   ttl=60) is True
    await asyncio.to_thread(other.release_lease_sync, "upload:s1", "hold-2")
    assert await store.acquire_lease("upload:s1", "hold-3", ttl=60) is True
