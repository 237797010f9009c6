"""Event consumers: every consumer turns every event into its jobs once, from its own cursor."""

from __future__ import annotations

import json
import sqlite3

import pytest

from registry.events import Consumers, EventConsumer, JobQueue, JobSpec, JobState
from registry.metadata.legacy_schema import MIGRATIONS
from registry.metadata.eventlog import append_events
from registry.metadata.models import Event
from registry.metadata.store import SQLiteMetadataStore

DIGEST = "sha256:" + "ab" * 32
ACCOUNT = "000000000000"


def scan_on_push(event):
    """A subscriber that makes a push a scan ahead of bulk rescans."""
    if event.kind == "image.pushed":
        return [("scan.image", {"repository": event.payload["repository"],
                                "digest": event.payload["digest"], "reason": "push"}, 10)]
    return []


def webhooks_for(*endpoints):
    def subscriber(event):
        return [JobSpec("webhook.deliver", {"endpoint": e, "kind": event.kind})
                for e in endpoints if event.kind in ("image.pushed", "image.deleted")]
    return subscriber


async def push(store, name="team/app", tags=("v1",), *, kind="image.pushed"):
    """The fact a manifest PUT appends in its transaction (the push itself is the images
    area's; here only its event matters)."""
    event = Event(kind, {"account": ACCOUNT, "repository": name, "digest": DIGEST,
                         "tags": list(tags), "mediaType": "application/json"})
    await store.db.write(lambda c: append_events(c, [event], now=1_700_000_000.0))


async def started(store, clock, *consumers: EventConsumer) -> Consumers:
    group = Consumers(store, consumers, clock=clock)
    await group.register()
    return group


async def test_one_push_yields_a_job_per_consumer(store, queue, clock):
    group = await started(store, clock, EventConsumer("scanner", scan_on_push),
                          EventConsumer("webhook:ci", webhooks_for("ci")),
                          EventConsumer("webhook:chat", webhooks_for("chat")))
    await push(store)

    assert await group.pump() == 3  # one event, seen by three consumers
    assert await group.pump() == 0  # consumed exactly once each
    jobs = await queue.claim(["scan.image", "webhook.deliver"], "w", lease_seconds=10, limit=10)
    assert [(j.kind, j.priority) for j in jobs] == [
        ("scan.image", 10), ("webhook.deliver", 0), ("webhook.deliver", 0)]
    assert jobs[0].payload == {"repository": "team/app", "digest": DIGEST, "reason": "push"}
    assert sorted(j.payload["endpoint"] for j in jobs[1:]) == ["chat", "ci"]
    assert len({j.source_event for j in jobs}) == 1
    assert sorted(j.idempotency_key.rsplit(":", 2)[0] for j in jobs) == [
        "scanner", "webhook:chat", "webhook:ci"]


async def test_a_consumer_added_later_with_latest_skips_history_earliest_gets_it(
        store, queue, clock):
    await push(store, name="team/old")
    group = await started(store, clock, EventConsumer("new", webhooks_for("new")),
                          EventConsumer("backfill", webhooks_for("backfill"), start="earliest"))
    await push(store, name="team/new")
    assert await group.pump() == 3
    jobs = await queue.claim(["webhook.deliver"], "w", lease_seconds=10, limit=10)
    assert sorted(j.payload["endpoint"] for j in jobs) == ["backfill", "backfill", "new"]


async def test_events_nobody_subscribes_to_are_consumed_without_jobs(store, queue, clock):
    group = await started(store, clock, EventConsumer("scanner", scan_on_push))
    await push(store, kind="repository.deleted")
    assert await group.pump() == 1
    assert await store.consumers_behind(["scanner"]) == []
    assert await queue.claim(["scan.image"], "w", lease_seconds=10, limit=10) == []


async def test_two_nodes_pumping_one_consumer_make_each_job_once(store, store_factory, clock):
    for n in range(20):
        await push(store, name=f"team/app{n}")
    groups = [await started(s, clock, EventConsumer("scanner", scan_on_push, start="earliest"))
              for s in (store, store_factory())]
    consumed = 0
    while moved := [await g.pump(limit=3) for g in groups]:
        consumed += sum(moved)
        if not any(moved):
            break
    assert consumed == 20
    jobs = await JobQueue(store, clock=clock).claim(["scan.image"], "w", lease_seconds=10,
                                                    limit=50)
    assert len(jobs) == len({j.source_event for j in jobs}) == 20


async def test_the_push_scan_goes_ahead_of_waiting_rescans(store, queue, clock):
    group = await started(store, clock, EventConsumer("scanner", scan_on_push))
    for n in range(3):
        await queue.enqueue("scan.image", {"reason": "rescan", "n": n}, priority=0)
    await push(store)
    await group.pump()
    [first] = await queue.claim(["scan.image"], "w", lease_seconds=10, limit=1)
    assert first.payload["reason"] == "push" and first.state is JobState.LEASED


def _legacy_database(path, outbox_rows):
    """A database as pre-Alembic Berth left it, with facts in its outbox."""
    conn = sqlite3.connect(path)
    for version, name, statements in MIGRATIONS:
        for statement in statements:
            conn.execute(statement)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT "
                 "NOT NULL, applied_at REAL NOT NULL)")
    conn.executemany("INSERT INTO schema_migrations VALUES (?, ?, 0)",
                     [(v, n) for v, n, _ in MIGRATIONS])
    for payload, done_at in outbox_rows:
        conn.execute("INSERT INTO outbox (kind, payload, created_at, available_at, done_at) "
                     "VALUES ('image.pushed', ?, 5, 5, ?)", (json.dumps(payload), done_at))
    conn.commit()
    conn.close()


async def test_an_adopted_legacy_database_keeps_its_facts_as_history(tmp_path, clock):
    """Upgrading keeps the outbox as the first events: consumers starting at "latest" (the
    servers' webhooks) do not replay them; one asking for "earliest" may."""
    path = tmp_path / "metadata.db"
    _legacy_database(path, [({"repository": "old", "digest": DIGEST}, 6.0),
                            ({"repository": "older", "digest": DIGEST}, 7.0)])
    store = SQLiteMetadataStore(path)
    try:
        assert await store.last_event_id() == 2
        group = await started(store, clock, EventConsumer("webhook:ci", scan_on_push),
                              EventConsumer("audit", scan_on_push, start="earliest"))
        assert await group.pump() == 2
        jobs = await JobQueue(store, clock=clock).claim(["scan.image"], "w", lease_seconds=10,
                                                        limit=10)
        assert {j.idempotency_key.split(":")[0] for j in jobs} == {"audit"}
        await push(store, name="team/new")
        assert await group.pump() == 2
        assert await store.last_event_id() == 3
    finally:
        await store.close()


async def test_pruning_keeps_events_a_stopped_consumer_has_not_seen(store, clock):
    live = await started(store, clock, EventConsumer("webhook:live", webhooks_for("live")),
                         EventConsumer("webhook:paused", webhooks_for("paused")))
    await push(store)
    await Consumers(store, [EventConsumer("webhook:live", webhooks_for("live"))]).pump()
    assert await store.prune_events(before=clock() + 3600) == 0
    assert await live.pump() == 1  # the paused endpoint is back and gets its event
    assert await store.prune_events(before=clock() + 3600) == 1


@pytest.mark.parametrize("start", ["middle", ""])
async def test_unknown_start_positions_are_refused(store, start):
    with pytest.raises(ValueError):
        await store.register_consumer("c", start=start)
