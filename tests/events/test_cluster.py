"""Two real `berth serve` nodes on one database (PostgreSQL; or one SQLite data directory
shared by two servers on one machine): a node killed mid-job has its job replayed once, by the
other node, as soon as its heartbeat times out (not when its lease would have run out); while
it lives, nobody else runs its job.

The job is a webhook delivery to a receiver that never answers the first request, so the
first node is busy with it when it is killed.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from aiohttp import web
from aiohttp.test_utils import TestServer

from registry.config import load_config
from registry.events import JobQueue, JobState
from registry.metadata.eventlog import append_events
from registry.metadata.factory import open_store
from registry.metadata.models import Event
from tests.support.server import BerthServer

SECRET = "whsec-5c1e0a9b7d3f4e2a8b6c0d1e9f7a5b3c"
NODE_TIMEOUT = 3


class FirstRequestHangs:
    def __init__(self) -> None:
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"event": request.headers.get("X-Berth-Event-Id"),
                              "body": await request.read()})
        if len(self.requests) == 1:
            await asyncio.Event().wait()  # the node sending it is killed meanwhile
        return web.Response(text="ok")


async def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_node_killed_mid_job_has_it_replayed_once_by_the_other(
        backend, request, tmp_path):
    url = request.getfixturevalue("postgres").create_database("cluster") \
        if backend == "postgresql" else ""
    shared = tmp_path / "data"  # SQLite: one data directory, two servers
    receiver = FirstRequestHangs()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    http = TestServer(app, host="127.0.0.1")
    await http.start_server()
    config_file = tmp_path / "berth.toml"
    config_file.write_text(f"""
[[webhooks]]
name = "ci"
url = "{http.make_url('/hook')}"
secret = "{SECRET}"
allow_private_network = true
timeout_seconds = 60
""")
    env = {"BERTH_METADATA__URL": url, "BERTH_METADATA__UPGRADE": "auto",
           "BERTH_GC__ENABLED": "false",
           "BERTH_AUTH__ENABLED": "false", "BERTH_SCANNER__ENABLED": "false",
           "BERTH_NODES__HEARTBEAT_SECONDS": "1",
           "BERTH_NODES__TIMEOUT_SECONDS": str(NODE_TIMEOUT)}
    data = ["--data", str(shared)] if backend == "sqlite" else []
    nodes = [BerthServer(tmp_path / name, env=env, workers=1,
                         extra_args=[*data, "--config", str(config_file)])
             for name in ("a", "b")]
    shared.mkdir()
    store = open_store(load_config(None, environ={}, overrides={
        "data_dir": str(shared), "metadata.url": url, "metadata.upgrade": "auto"}))
    try:
        nodes[0].start()
        # The fact a push appends (the push path itself is the images area's).
        event = Event("image.pushed", {"account": "000000000000", "repository": "team/app",
                                       "digest": "sha256:" + "ab" * 32, "tags": ["v1"],
                                       "mediaType": "application/vnd.oci.image.manifest.v1+json"})
        await store.db.write(lambda c: append_events(c, [event], now=time.time()))
        await wait_for(lambda: len(receiver.requests) == 1, 30)

        nodes[1].start()
        await asyncio.sleep(NODE_TIMEOUT + 2)  # node A lives: its job stays its own
        assert len(receiver.requests) == 1

        nodes[0].kill9()
        killed = time.monotonic()
        await wait_for(lambda: len(receiver.requests) == 2, 30)
        replayed_after = time.monotonic() - killed
        await asyncio.sleep(2)

        assert len(receiver.requests) == 2
        assert replayed_after < 60 / 2, "replayed by the heartbeat timeout, not the lease"
        first, second = receiver.requests
        assert first["event"] == second["event"]  # the same delivery, replayed
        assert json.loads(second["body"])["detail"]["repository-name"] == "team/app"
        for _ in range(50):
            job = await JobQueue(store).get(1)
            if job.state is JobState.SUCCEEDED:
                break
            await asyncio.sleep(0.1)
        assert (job.kind, job.state, job.attempts) == ("webhook.deliver", JobState.SUCCEEDED, 2)
        assert len(await store.list_nodes()) == 1
    finally:
        for node in nodes:
            node.stop() if node.running else None
        await store.close()
        await http.close()
