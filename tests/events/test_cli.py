"""``berth events``: consumers and their lag, dropping one, nodes; on the configured store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from registry.config import load_config
from registry.events import Node
from registry.metadata.eventlog import append_events
from registry.metadata.factory import open_store
from registry.metadata.models import Event
from tests.support.server import REPO_ROOT


def berth(data, url, *argv):
    env = {"BERTH_METADATA__URL": url, "BERTH_METADATA__UPGRADE": "auto", "PATH": "/usr/bin"}
    return subprocess.run([sys.executable, "-m", "registry", "events", *argv, "--data",
                           str(data)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_consumers_lag_drop_and_nodes(backend, request, tmp_path):
    url = request.getfixturevalue("postgres").create_database("cli") \
        if backend == "postgresql" else ""
    data = tmp_path / "data"
    data.mkdir()
    store = open_store(load_config(None, environ={}, overrides={
        "data_dir": str(data), "metadata.url": url, "metadata.upgrade": "auto"}))
    try:
        await store.register_consumer("webhook:ci", start="earliest")
        await store.register_consumer("webhook:gone", start="earliest")
        await store.db.write(lambda c: append_events(c, [Event("image.pushed", {})] * 3,
                                                     now=1.0))
        await store.consume_events("webhook:ci", lambda e: [])
        node = Node(store, node_id="node-1")
        await node.beat()
    finally:
        await store.close()

    listed = berth(data, url, "consumers", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"last_event": 3, "consumers": [
        {"name": "webhook:ci", "position": 3, "behind": 0},
        {"name": "webhook:gone", "position": 0, "behind": 3}]}
    assert berth(data, url, "drop-consumer", "webhook:gone").returncode == 0
    assert berth(data, url, "drop-consumer", "webhook:gone").returncode == 1
    table = berth(data, url, "consumers").stdout.splitlines()
    assert [line.split()[0] for line in table] == ["CONSUMER", "webhook:ci"]
    nodes = json.loads(berth(data, url, "nodes", "--json").stdout)["nodes"]
    assert [n["id"] for n in nodes] == ["node-1"]
