"""Fan-out: outbox facts become jobs in the same transaction that consumes them."""

from __future__ import annotations

import json
import sqlite3

import pytest

from registry.events import FanOut, JobQueue, JobSpec, JobState
from registry.metadata.models import Event, ManifestRecord
from registry.metadata.legacy_schema import MIGRATIONS
from registry.metadata.store import SQLiteMetadataStore
from tests.events.fakes import FailingStore, InjectedCrash

DIGEST = "sha256:" + "ab" * 32
ACCOUNT = "000000000000"


def scan_on_push(event):
    """What the scanner subscribes: a push yields a scan ahead of bulk rescans."""
    if event.kind == "image.pushed":
        return [("scan.image", {"repository": event.payload["repository"],
                                "digest": event.payload["digest"], "reason": "push"}, 10)]
    return []


def webhooks_for(*endpoints):
    def subscriber(event):
        return [JobSpec("webhook.deliver", {"endpoint": e, "kind": event.kind})
                for e in endpoints if event.kind in ("image.pushed", "image.deleted")]
    return subscriber


async def push(store, name="team/app", tags=("v1",)):
    """A manifest PUT as the registry does it: manifest, tags and the fact in one transaction."""
    repo = await store.ensure_repository(ACCOUNT, name)
    event = Event("image.pushed", {"account": ACCOUNT, "repository": name, "digest": DIGEST,
                                   "tags": list(tags), "mediaType": "application/json"})
    await store.put_manifest(repo.id, ManifestRecord(DIGEST, "application/json", 2), list(tags),
                             [event])


def rows(store, sql, params=()):
    return store._read(sql, params)


async def test_one_push_yields_a_scan_and_a_webhook_per_endpoint(store, queue):
    await push(store)
    fanout = FanOut(queue, [scan_on_push, webhooks_for("ci", "chat")])

    assert await fanout.pump() == 1
    assert await fanout.pump() == 0  # consumed exactly once
    jobs = await queue.claim(["scan.image", "webhook.deliver"], "w", lease_seconds=10, limit=10)

    assert [(j.kind, j.priority) for j in jobs] == [
        ("scan.image", 10), ("webhook.deliver", 0), ("webhook.deliver", 0)]
    assert jobs[0].payload == {"repository": "team/app", "digest": DIGEST, "reason": "push"}
    assert sorted(j.payload["endpoint"] for j in jobs[1:]) == ["chat", "ci"]
    [(event_id, done_at)] = rows(store, "SELECT id, done_at FROM outbox")
    assert done_at is not None and {j.source_event for j in jobs} == {event_id}


async def test_jobs_and_the_consumed_mark_commit_together(store, clock):
    await push(store)
    subscribers = [scan_on_push, webhooks_for("ci")]
    crashing = FanOut(JobQueue(FailingStore(store), clock=clock), subscribers)
    with pytest.raises(InjectedCrash):
        await crashing.pump()
    assert rows(store, "SELECT count(*) FROM jobs") == [(0,)]
    assert rows(store, "SELECT done_at FROM outbox") == [(None,)]  # still pending: not lost

    assert await FanOut(JobQueue(store, clock=clock), subscribers).pump() == 1
    assert rows(store, "SELECT kind FROM jobs ORDER BY kind") == [
        ("scan.image",), ("webhook.deliver",)]  # once each: not duplicated either


async def test_a_failing_subscriber_does_not_cost_the_others_their_jobs(store, queue):
    def broken(event):
        raise KeyError("tags")

    await push(store)
    assert await FanOut(queue, [broken, scan_on_push]).pump() == 1
    assert rows(store, "SELECT kind FROM jobs") == [("scan.image",)]
    [(done_at, error)] = rows(store, "SELECT done_at, last_error FROM outbox")
    assert done_at is not None and error == "KeyError: 'tags'"


async def test_events_nobody_subscribes_to_are_consumed(store, queue):
    await store.transaction(lambda conn: store._add_events(
        conn, [Event("repository.deleted", {"account": ACCOUNT, "repository": "gone"})]))
    assert await FanOut(queue, [scan_on_push]).pump() == 1
    assert rows(store, "SELECT count(*) FROM outbox WHERE done_at IS NULL") == [(0,)]
    assert rows(store, "SELECT count(*) FROM jobs") == [(0,)]


async def test_two_stores_on_one_file_fan_out_each_event_once(store, tmp_path, clock):
    for n in range(20):
        await push(store, name=f"team/app{n}")
    other = SQLiteMetadataStore(store.path)  # a second process's view of the same database
    try:
        fanouts = [FanOut(JobQueue(s, clock=clock), [scan_on_push]) for s in (store, other)]
        consumed = 0
        while moved := [await f.pump(limit=3) for f in fanouts]:
            consumed += sum(moved)
            if not any(moved):
                break
    finally:
        await other.close()
    assert consumed == 20
    assert rows(store, "SELECT count(*), count(DISTINCT source_event) FROM jobs") == [(20, 20)]


async def test_events_recorded_before_consumers_existed_are_history(tmp_path):
    path = tmp_path / "metadata.db"
    conn = sqlite3.connect(path)
    for version, name, statements in MIGRATIONS:
        if version >= 50:
            break
        for statement in statements:
            conn.execute(statement)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT "
                 "NOT NULL, applied_at REAL NOT NULL)")
    conn.executemany("INSERT INTO schema_migrations VALUES (?, ?, 0)",
                     [(v, n) for v, n, _ in MIGRATIONS if v < 50])
    conn.execute("INSERT INTO outbox (kind, payload, created_at, available_at) VALUES "
                 "('image.pushed', ?, 5, 5)", (json.dumps({"repository": "old"}),))
    conn.commit()
    conn.close()

    store = SQLiteMetadataStore(path)  # runs migration 50
    try:
        assert rows(store, "SELECT done_at FROM outbox") == [(5,)]
        assert await FanOut(JobQueue(store), [scan_on_push]).pump() == 0
    finally:
        await store.close()


async def test_fan_out_then_worker_runs_the_push_scan_first(store, queue, clock):
    """End to end on the queue: rescans already waiting do not delay the pushed image."""
    for n in range(3):
        await queue.enqueue("scan.image", {"reason": "rescan", "n": n}, priority=0)
    await push(store)
    await FanOut(queue, [scan_on_push]).pump()
    [first] = await queue.claim(["scan.image"], "w", lease_seconds=10, limit=1)
    assert first.payload["reason"] == "push" and first.state is JobState.LEASED


async def test_purge_forgets_consumed_events_but_keeps_troubled_ones_longer(store, queue, clock):
    def picky(event):
        if event.payload["repository"] == "team/bad":
            raise ValueError("cannot route")
        return []

    await push(store, name="team/good")
    await push(store, name="team/bad")
    await FanOut(queue, [picky]).pump()
    clock.advance(100)
    assert await queue.purge(succeeded_before=clock(), failed_before=clock() - 1000) == 1
    assert [json.loads(p)["repository"] for (p,) in rows(store, "SELECT payload FROM outbox")] \
        == ["team/bad"]
