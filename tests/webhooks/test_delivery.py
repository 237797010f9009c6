"""Webhook deliveries against a real receiver on 127.0.0.1, with time on a FakeClock."""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid

from registry.events import JobState
from registry.metadata.store import SQLiteMetadataStore
from scanner.webhooks import DeliveryStatus, verify_signature
from tests.webhooks.pipeline import (
    ACCOUNT, DIGEST, REGION, SECRET, Pipeline, endpoint, push_image,
)

EVENT_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region",
              "resources", "detail"]


async def next_attempt(pipeline, clock) -> None:
    """Move time to the recorded next attempt, checking nothing is sent a moment earlier."""
    [delivery] = await pipeline.deliveries.recent()
    assert delivery.status is DeliveryStatus.RETRYING
    clock.advance(delivery.next_attempt_at - clock() - 0.001)
    assert await pipeline.worker.run_until_idle() == 0
    clock.advance(0.001)


async def test_three_failures_a_restart_and_the_fourth_attempt_delivers(
        tmp_path, store, clock, receiver_factory, caplog):
    caplog.set_level(logging.DEBUG)
    receiver = await receiver_factory([500, 500, 500, 200])
    hook = endpoint(receiver.url)
    first = await Pipeline.open(store, [hook], clock)
    await push_image(store)

    await first.worker.run_until_idle()
    await next_attempt(first, clock)
    await first.worker.run_until_idle()
    assert len(receiver.requests) == 2
    # Restart: drop the worker and the store, reopen the same file in a "new process".
    await first.close()
    await store.close()
    reopened = SQLiteMetadataStore(tmp_path / "metadata.db")
    try:
        second = await Pipeline.open(reopened, [hook], clock)
        await next_attempt(second, clock)
        await second.worker.run_until_idle()
        await next_attempt(second, clock)
        await second.worker.run_until_idle()
        [delivery] = await second.deliveries.recent(history=True)
        await second.close()
    finally:
        await reopened.close()

    assert [r.body for r in receiver.requests] == [receiver.requests[0].body] * 4
    event = json.loads(receiver.requests[0].body)
    assert list(event) == EVENT_KEYS
    assert uuid.UUID(event["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert {k: event[k] for k in ("version", "detail-type", "source", "account", "region",
                                  "resources")} == {
        "version": "0", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": ACCOUNT, "region": REGION, "resources": []}
    assert event["detail"] == {"result": "SUCCESS", "repository-name": "team/app",
                               "image-digest": DIGEST, "action-type": "PUSH", "image-tag": "v1"}
    for request in receiver.requests:
        headers = request.headers
        assert headers["X-Berth-Event-Id"] == event["id"]  # the receiver's dedupe key
        assert headers["Content-Type"] == "application/json"
        assert verify_signature(SECRET, headers["X-Berth-Signature"], request.body,
                                tolerance=300, now=clock())
        assert not verify_signature("not-the-secret", headers["X-Berth-Signature"],
                                    request.body, tolerance=300, now=clock())

    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 4
    assert delivery.last_status_code == 200 and delivery.delivered_at == clock()
    assert [a.status_code for a in delivery.history] == [500, 500, 500, 200]
    assert [a.number for a in delivery.history] == [1, 2, 3, 4]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert SECRET not in logged


async def test_a_400_is_permanent_and_recorded(store, clock, receiver_factory):
    receiver = await receiver_factory([400])
    pipeline = await Pipeline.open(store, [endpoint(receiver.url)], clock)
    await push_image(store)
    await pipeline.worker.run_until_idle()
    clock.advance(24 * 3600)
    assert await pipeline.worker.run_until_idle() == 0
    [delivery] = await pipeline.deliveries.recent()
    job = (await pipeline.queue.claim(["webhook.deliver"], "x", lease_seconds=1, limit=1))
    await pipeline.close()

    assert len(receiver.requests) == 1 and job == []
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.FAILED, 1, 400)
    assert delivery.next_attempt_at is None


async def test_429_and_408_are_retried_and_retry_after_is_honoured(
        store, clock, receiver_factory):
    receiver = await receiver_factory([429, 408, 204], retry_after="120")
    pipeline = await Pipeline.open(store, [endpoint(receiver.url)], clock)
    await push_image(store)
    await pipeline.worker.run_until_idle()
    [delivery] = await pipeline.deliveries.recent()
    assert delivery.next_attempt_at - clock() >= 120
    for _ in range(2):
        await next_attempt(pipeline, clock)
        await pipeline.worker.run_until_idle()
    [delivery] = await pipeline.deliveries.recent()
    await pipeline.close()
    assert [delivery.status, delivery.attempts, delivery.last_status_code] == [
        DeliveryStatus.DELIVERED, 3, 204]


async def test_network_errors_and_timeouts_are_retried_without_leaking_the_url(
        store, clock, receiver_factory):
    hanging = await receiver_factory([200], hang=True)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        closed = f"http://user:pw@127.0.0.1:{port}/hook?token=abc"
    hooks = [endpoint(closed, name="down"), endpoint(hanging.url, name="slow", timeout=0.02)]
    pipeline = await Pipeline.open(store, hooks, clock)
    await push_image(store)
    await pipeline.worker.run_until_idle()
    found = {d.endpoint: d for d in await pipeline.deliveries.recent()}
    await pipeline.close()

    down, slow = found["down"], found["slow"]
    assert down.status is slow.status is DeliveryStatus.RETRYING
    assert down.last_status_code is None and down.last_error.startswith("ClientConnectorError")
    assert slow.last_error == "timeout after 0.02s"
    assert down.url == f"http://127.0.0.1:{port}/hook"  # no userinfo, no query
    assert "token" not in down.last_error and "pw" not in down.last_error
    assert down.next_attempt_at > clock()


async def test_filters_choose_which_endpoints_hear_of_an_event(store, clock, receiver_factory):
    everything = await receiver_factory([200])
    scans_only = await receiver_factory([200])
    other_team = await receiver_factory([200])
    pipeline = await Pipeline.open(store, [
        endpoint(everything.url, name="all"),
        endpoint(scans_only.url, name="scans", events=frozenset({"ECR Image Scan"})),
        endpoint(other_team.url, name="other", repositories=("other/*",)),
    ], clock)
    await push_image(store, tags=("v1", "latest"))
    await pipeline.worker.run_until_idle()
    await pipeline.close()

    assert len(scans_only.requests) == len(other_team.requests) == 0
    events = [json.loads(r.body) for r in everything.requests]
    assert sorted(e["detail"]["image-tag"] for e in events) == ["latest", "v1"]  # one per tag
    assert len({e["id"] for e in events}) == 2


async def test_a_crashed_delivery_is_replayed_after_the_lease_expires(
        store, clock, receiver_factory):
    receiver = await receiver_factory([200])
    pipeline = await Pipeline.open(store, [endpoint(receiver.url)], clock)
    await push_image(store)
    await pipeline.worker.consumers.pump()
    # A worker claims the delivery and dies before sending it.
    assert await pipeline.queue.claim(["webhook.deliver"], "dead", lease_seconds=60, limit=1)
    assert await pipeline.worker.run_until_idle() == 0
    [pending] = await pipeline.deliveries.recent()
    assert pending.status is DeliveryStatus.SENDING and pending.attempts == 0
    clock.advance(61)
    assert await pipeline.worker.run_until_idle() == 1
    [delivery] = await pipeline.deliveries.recent(history=True)
    await pipeline.close()
    assert len(receiver.requests) == 1 and delivery.status is DeliveryStatus.DELIVERED
    assert [a.number for a in delivery.history] == [2]  # attempt 1 died with its worker


async def test_a_delivery_for_a_removed_endpoint_fails_permanently(store, clock, receiver_factory):
    receiver = await receiver_factory([200])
    old = await Pipeline.open(store, [endpoint(receiver.url, name="old")], clock)
    await push_image(store)
    await old.worker.consumers.pump()
    await old.close()
    new = await Pipeline.open(store, [endpoint(receiver.url, name="new")], clock)  # config changed
    await new.worker.run_until_idle()
    [delivery] = await new.deliveries.recent()
    job = await new.queue.get(1)
    await new.close()
    assert receiver.requests == []
    assert delivery.status is DeliveryStatus.FAILED and delivery.endpoint == "old"
    assert job.state is JobState.FAILED and job.last_error == "endpoint not configured"
