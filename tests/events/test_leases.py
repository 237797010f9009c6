"""Leases across nodes: a handler whose lease may be lost is cancelled before another node can
claim its job; a dead node's job replays exactly once elsewhere; idle workers never write.

Two stores on one database are two nodes (`store_factory`). Time is a FakeClock, used both as
the database time the stores compare leases with and as each node's local monotonic clock.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

from registry.config import load_config
from registry.events import Consumers, EventConsumer, JobQueue, JobState, Node
from registry.metadata.database import Database
from registry.metadata.errors import StoreUnavailableError
from registry.metadata.factory import open_store
from registry.metadata.store import SQLMetadataStore
from registry.worker import RetryPolicy, Worker
from tests.events.fakes import FakeClock, settle

KIND = "scan.image"


class Blocked:
    """A handler that runs until cancelled, recording when it started and stopped."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.started: list[tuple[int, int]] = []
        self.cancelled_at: list[float] = []
        self.running = asyncio.Event()

    async def __call__(self, job) -> None:
        self.started.append((job.id, job.attempts))
        self.running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled_at.append(self.clock())
            raise


class UnreachableRenewals(JobQueue):
    """The database stops answering this node's lease renewals."""

    async def extend_lease(self, job):
        raise StoreUnavailableError("the metadata database is unreachable")


def worker(queue, clock, handler, **options) -> Worker:
    return Worker(queue, {KIND: handler}, clock=clock, sleep=clock.sleep,
                  rng=random.Random(5), retry=RetryPolicy(base=1, cap=10, max_attempts=5),
                  **options)


async def tick_until(clock, condition, *, step=1.0, limit=120) -> None:
    for _ in range(limit):
        if condition():
            return
        await clock.tick(step)
        await asyncio.sleep(0.005)  # store calls run on threads
    raise AssertionError("condition never held")


async def test_a_lease_that_cannot_be_renewed_stops_its_handler_before_anyone_can_claim(
        store, store_factory, clock):
    other = JobQueue(store_factory(), clock=clock)
    job_id = await JobQueue(store, clock=clock).enqueue(KIND, {})
    handler = Blocked(clock)
    a = worker(UnreachableRenewals(store, clock=clock), clock, handler, lease_seconds=30,
               owner="node-a")
    claimed_at = clock()
    run = asyncio.create_task(a.run_until_idle())
    await handler.running.wait()

    await tick_until(clock, lambda: handler.cancelled_at)
    [cancelled] = handler.cancelled_at
    assert cancelled < claimed_at + 30  # before the lease ends in the database
    assert await other.claim([KIND], "node-b", lease_seconds=30, limit=1) == []
    await run
    clock.advance(claimed_at + 30 - clock())
    [job] = await other.claim([KIND], "node-b", lease_seconds=30, limit=1)
    assert (job.id, job.attempts) == (job_id, 2)


async def test_a_lease_taken_over_stops_the_handler_at_the_next_renewal(
        store, store_factory, clock):
    other_store = store_factory()
    queue = JobQueue(store, clock=clock)
    job_id = await queue.enqueue(KIND, {})
    handler = Blocked(clock)
    a = worker(queue, clock, handler, lease_seconds=30, owner="node-a")
    run = asyncio.create_task(a.run_until_idle())
    await handler.running.wait()
    # An operator (or a node that found node-a dead) ended the lease; node-b took the job.
    await other_store.heartbeat("node-a", hostname="h", pid=1, now=clock() - 100)
    assert await other_store.expire_dead_nodes(30, now=clock()) == 1
    [taken] = await JobQueue(other_store, clock=clock).claim([KIND], "node-b",
                                                            lease_seconds=30, limit=1)
    await tick_until(clock, lambda: handler.cancelled_at)
    await run
    job = await queue.get(job_id)
    assert (job.state, job.lease_owner, job.attempts) == (JobState.LEASED, "node-b", 2)
    assert taken.attempts == 2


async def test_a_dead_nodes_job_replays_exactly_once_on_the_other_node(
        store, store_factory, clock):
    """Node A stops heartbeating (its process hangs or is cut off from the database). Its
    handler is cancelled before B may take over; B then runs the job once, to the end."""
    stores = {"a": store, "b": store_factory()}
    nodes = {n: Node(s, node_id=f"node-{n}", interval=5, timeout=30, clock=clock,
                     monotonic=clock, sleep=clock.sleep) for n, s in stores.items()}
    for node in nodes.values():
        await node.beat()
    job_id = await JobQueue(store, clock=clock).enqueue(KIND, {})
    hung = Blocked(clock)
    finished = []

    async def finish(job):
        finished.append((job.id, job.attempts))

    a = worker(JobQueue(stores["a"], clock=clock), clock, hung, node=nodes["a"],
               lease_seconds=60)
    b = worker(JobQueue(stores["b"], clock=clock), clock, finish, node=nodes["b"],
               lease_seconds=60)
    run_a = asyncio.create_task(a.run_until_idle())
    await hung.running.wait()

    replayed_at = []
    for _ in range(8):  # B beats every 5 s; A's beats have stopped
        await clock.tick(5)
        await asyncio.sleep(0.01)
        if await nodes["b"].beat():
            replayed_at.append(clock())
    assert len(replayed_at) == 1 and len(hung.cancelled_at) == 1
    assert hung.cancelled_at[0] < replayed_at[0], "A's job was released before A stopped it"
    await run_a
    assert await b.run_until_idle() == 1
    assert await a.run_until_idle() == 0
    assert finished == [(job_id, 2)] and hung.started == [(job_id, 1)]
    assert (await JobQueue(store).get(job_id)).state is JobState.SUCCEEDED
    assert [n.id for n in await store.list_nodes()] == ["node-b"]


class CountingDatabase(Database):
    """The real database, counting write transactions."""

    def __init__(self, real: Database) -> None:
        self.real, self.dialect, self.writes = real, real.dialect, 0

    async def read(self, fn):
        return await self.real.read(fn)

    def read_sync(self, fn):
        return self.real.read_sync(fn)

    async def write(self, fn):
        self.writes += 1
        return await self.real.write(fn)

    def write_sync(self, fn):
        self.writes += 1
        return self.real.write_sync(fn)

    def subscribe(self, channel, callback):
        self.real.subscribe(channel, callback)

    async def wait(self, channel, timeout):
        return await self.real.wait(channel, timeout)

    def engine(self):
        return self.real.engine()

    async def close(self) -> None:
        pass


async def test_an_idle_worker_reads_but_never_takes_the_write_lock(store, store_factory):
    counting = CountingDatabase(store_factory().db)
    node_store = SQLMetadataStore(counting)
    clock = FakeClock()
    consumers = Consumers(node_store, [EventConsumer("webhook:ci", lambda e: [])])
    await consumers.register()
    started, done = counting.writes, asyncio.Event()

    async def handler(job):
        done.set()

    idle = worker(JobQueue(node_store), clock, handler, consumers=consumers, poll_interval=1.0)
    runner = asyncio.create_task(idle.run())
    for _ in range(10):  # ten poll intervals with nothing to do
        await clock.tick(1)
        await asyncio.sleep(0.01)
    assert counting.writes == started
    # A job queued by another node wakes it (NOTIFY / in-process), without a poll interval.
    await JobQueue(store).enqueue(KIND, {})
    await asyncio.wait_for(done.wait(), 5)
    assert counting.writes > started
    await idle.stop()
    await runner


def _work_forever(data_dir: str, url: str, marker: str) -> None:
    """A server process whose job never ends (a long scan) until the process is killed."""
    async def scan(job):
        Path(marker).write_text(str(job.id))
        await asyncio.Event().wait()

    async def main():
        store = open_store(load_config(None, environ={}, overrides={
            "data_dir": data_dir, "metadata.url": url}), prepare=False)
        node = Node(store, interval=0.2, timeout=30)
        await node.beat()
        asyncio.create_task(node.run())
        await Worker(JobQueue(store), {KIND: scan}, node=node, lease_seconds=600,
                     poll_interval=0.01).run()

    asyncio.run(main())


async def test_a_node_killed_mid_job_has_its_job_replayed_by_another(store, metadata_config,
                                                                     tmp_path):
    job_id = await JobQueue(store).enqueue(KIND, {"digest": "sha256:aa"}, priority=10)
    marker = tmp_path / "started"
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_work_forever, args=(
        str(metadata_config.data_dir), metadata_config.metadata.url, str(marker)))
    child.start()
    await settle(marker.exists, rounds=30_000)
    os.kill(child.pid, signal.SIGKILL)  # no cleanup, no release: the lease just stays
    await asyncio.to_thread(child.join, 10)

    later = FakeClock(time.time() + 31)  # the survivor, once the heartbeat timed out
    survivor = Node(store, timeout=30, clock=later, monotonic=later, sleep=later.sleep)
    queue = JobQueue(store, clock=later)
    assert (await queue.get(job_id)).state is JobState.LEASED
    assert await survivor.beat() == 1  # the lease (600 s) ends now, not in ten minutes
    finished = []

    async def scan(job):
        finished.append((job.id, job.attempts, job.payload))

    assert await worker(queue, later, scan, node=survivor).run_until_idle() == 1
    assert finished == [(job_id, 2, {"digest": "sha256:aa"})]
    assert (await queue.get(job_id)).state is JobState.SUCCEEDED
