"""The event log's contract on every backend: cursors per consumer, exactly-once jobs per
consumer, start positions, pruning that waits for the slowest consumer, commit order."""

from __future__ import annotations

import asyncio
import threading

import pytest

from registry.metadata.eventlog import append_events
from registry.metadata.models import Event
from registry.metadata.writes import NewJob

T0 = 1_700_000_000.0


async def append(store, *kinds: str, now: float = T0) -> None:
    events = [Event(kind, {"n": n}) for n, kind in enumerate(kinds)]
    await store.db.write(lambda c: append_events(c, events, now=now))


def one_job_each(kind: str = "webhook.deliver"):
    def subscriber(event):
        return [NewJob(kind, {"event": event.id, "what": event.kind})]
    return subscriber


async def jobs_of(store) -> list[tuple[str, int]]:
    from registry.metadata import tables as t
    from registry.metadata.database import query
    import sqlalchemy as sa

    q = query(lambda d: sa.select(t.jobs.c.idempotency_key, t.jobs.c.source_event)
              .order_by(t.jobs.c.id))
    return await store.db.read(lambda c: c.all(q))


async def test_two_consumers_both_get_every_event_once(store):
    for name in ("webhook:ci", "webhook:chat"):
        assert await store.register_consumer(name, start="earliest") == 0
    await append(store, "image.pushed", "image.deleted")

    for name in ("webhook:ci", "webhook:chat"):
        assert await store.consume_events(name, one_job_each(), limit=10) == 2
        assert await store.consume_events(name, one_job_each(), limit=10) == 0
    keys = [k for k, _ in await jobs_of(store)]
    assert sorted(keys) == ["webhook:chat:1:0", "webhook:chat:2:0",
                            "webhook:ci:1:0", "webhook:ci:2:0"]
    assert await store.consumer_positions() == {"webhook:chat": 2, "webhook:ci": 2}


@pytest.mark.parametrize("start, expected", [("earliest", 3), ("latest", 0)])
async def test_a_consumer_added_later_starts_where_configured(store, start, expected):
    await append(store, "image.pushed", "image.pushed", "image.deleted")
    await store.register_consumer("late", start=start)
    assert await store.consume_events("late", one_job_each(), limit=10) == expected
    await append(store, "image.pushed")
    assert await store.consume_events("late", one_job_each(), limit=10) == 1


async def test_re_registering_never_moves_a_cursor(store):
    await store.register_consumer("c", start="earliest")
    await append(store, "a", "b")
    assert await store.register_consumer("c", start="latest") == 0
    assert await store.consume_events("c", one_job_each(), limit=1) == 1
    assert await store.register_consumer("c", start="earliest") == 1


async def test_consuming_in_batches_and_an_unknown_consumer(store):
    await store.register_consumer("c", start="earliest")
    await append(store, *["image.pushed"] * 5)
    assert [await store.consume_events("c", one_job_each(), limit=2) for _ in range(4)] \
        == [2, 2, 1, 0]
    assert [e for _, e in await jobs_of(store)] == [1, 2, 3, 4, 5]
    with pytest.raises(LookupError):
        await store.consume_events("nobody", one_job_each())


async def test_jobs_and_the_cursor_commit_together(store):
    await store.register_consumer("c", start="earliest")
    await append(store, "image.pushed")

    def crash_after_the_jobs(event):
        yield NewJob("webhook.deliver", {})
        raise SystemExit  # not an Exception: the whole transaction goes down

    with pytest.raises(SystemExit):
        await store.consume_events("c", crash_after_the_jobs)
    assert await jobs_of(store) == []
    assert await store.consumer_positions() == {"c": 0}
    assert await store.consume_events("c", one_job_each()) == 1
    assert len(await jobs_of(store)) == 1


async def test_a_failing_subscriber_skips_its_event_but_not_the_others(store, caplog):
    await store.register_consumer("c", start="earliest")
    await append(store, "bad", "good")

    def picky(event):
        if event.kind == "bad":
            raise KeyError("tags")
        return [NewJob("webhook.deliver", {})]

    assert await store.consume_events("c", picky) == 2
    assert [e for _, e in await jobs_of(store)] == [2]
    assert any(r.message == "event subscriber failed" for r in caplog.records)


async def test_consumers_behind_is_a_read(store):
    await store.register_consumer("a", start="earliest")
    await store.register_consumer("b", start="earliest")
    assert await store.consumers_behind(["a", "b"]) == []
    await append(store, "x")
    await store.consume_events("a", one_job_each())
    assert await store.consumers_behind(["a", "b", "unknown"]) == ["b"]


async def test_pruning_waits_for_the_slowest_consumer_even_one_not_configured(store):
    await store.register_consumer("fast", start="earliest")
    await store.register_consumer("disabled-endpoint", start="earliest")
    await append(store, "a", "b", "c", now=T0)
    await store.consume_events("fast", one_job_each())
    assert await store.prune_events(before=T0 + 1) == 0  # "disabled-endpoint" has seen none

    await store.consume_events("disabled-endpoint", one_job_each(), limit=2)
    assert await store.prune_events(before=T0 + 1) == 2
    assert await store.prune_events(before=T0) == 0  # retention: not older than `before`
    # The consumer comes back and still gets what it had not seen.
    assert await store.consume_events("disabled-endpoint", one_job_each()) == 1

    await append(store, "d", now=T0)
    assert await store.drop_consumer("disabled-endpoint") is True
    assert await store.drop_consumer("disabled-endpoint") is False
    assert await store.prune_events(before=T0 + 1) == 1  # "fast" passed it; "d" waits
    assert await store.last_event_id() == 4


async def test_event_ids_are_never_reused_after_pruning(store):
    await append(store, "a", "b")
    assert await store.prune_events(before=T0 + 1) == 2  # no consumer: history only
    await append(store, "c")
    assert await store.last_event_id() == 3


async def test_the_same_event_never_yields_a_job_twice_for_a_consumer(store):
    """A consumer dropped and registered again from the start: the idempotency keys hold."""
    await store.register_consumer("c", start="earliest")
    await append(store, "a")
    await store.consume_events("c", one_job_each())
    await store.drop_consumer("c")
    await store.register_consumer("c", start="earliest")
    assert await store.consume_events("c", one_job_each()) == 1
    assert len(await jobs_of(store)) == 1


async def test_two_stores_consuming_one_cursor_create_each_job_once(store, store_factory):
    other = store_factory()
    await store.register_consumer("c", start="earliest")
    await append(store, *["image.pushed"] * 30)
    total = 0
    while moved := sum(await asyncio.gather(*(s.consume_events("c", one_job_each(), limit=4)
                                              for s in (store, other)))):
        total += moved
    assert total == 30
    assert [e for _, e in await jobs_of(store)] == list(range(1, 31))


async def test_appends_wake_waiting_consumers(store):
    waiter = asyncio.create_task(store.wait_for_events(5.0))
    await asyncio.sleep(0.2)  # PostgreSQL: the listener connection is up
    await append(store, "x")
    assert await asyncio.wait_for(waiter, 5.0) is True


async def test_events_commit_in_id_order(store, store_factory, backend):
    """A consumer never passes an id that commits later: appenders serialise on the event
    lock, so while one transaction holds id N uncommitted nobody commits N + 1."""
    other = store_factory()
    await store.register_consumer("c", start="earliest")
    holding, release = threading.Event(), threading.Event()

    def slow_append(c):
        append_events(c, [Event("first", {})], now=T0)
        holding.set()
        release.wait(10)

    first = asyncio.create_task(store.db.write(slow_append))
    await asyncio.to_thread(holding.wait, 10)
    if backend == "sqlite":
        # One writer at a time: the second append waits for the database lock.
        release.set()
        await first
    second = asyncio.create_task(append(other, "second"))
    await asyncio.sleep(0.3)
    # Whatever committed so far, the consumer must not see "second" without "first".
    seen = []
    await other.consume_events("c", lambda e: seen.append(e.kind) or [])
    assert seen in ([], ["first"], ["first", "second"])
    release.set()
    await first
    await second
    await other.consume_events("c", lambda e: seen.append(e.kind) or [])
    assert seen == ["first", "second"]
