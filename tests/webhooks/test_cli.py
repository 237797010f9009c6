"""``berth webhooks deliveries`` over a database a real delivery run wrote."""

from __future__ import annotations

import argparse
import asyncio
import json

from registry.metadata.store import SQLiteMetadataStore
from scanner.webhooks_cli import register
from tests.events.fakes import FakeClock
from tests.webhooks.conftest import Receiver, start_receiver
from tests.webhooks.pipeline import SECRET, Pipeline, endpoint, push_image


def berth(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="berth")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


async def deliver_twice(data_dir) -> None:
    """One delivery that fails once (503) and then lands; one refused for good (410)."""
    clock = FakeClock()
    flaky, gone = Receiver([503, 200]), Receiver([410])
    servers = [await start_receiver(flaky), await start_receiver(gone)]
    store = SQLiteMetadataStore(data_dir / "metadata.db")
    pipeline = await Pipeline.open(store, [endpoint(flaky.url, name="ci"),
                                endpoint(gone.url + "?token=t0k", name="old-chat")], clock)
    try:
        await push_image(store)
        await pipeline.worker.run_until_idle()
        clock.advance(3600)
        await pipeline.worker.run_until_idle()
    finally:
        await pipeline.close()
        await store.close()
        for server in servers:
            await server.close()


def test_deliveries_table_lists_attempts_and_last_status(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    asyncio.run(deliver_twice(data))

    assert berth("webhooks", "deliveries", "--data", str(data), "--attempts") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["CREATED", "DELIVERY", "ENDPOINT", "EVENT", "REPOSITORY",
                                "STATUS", "ATTEMPTS", "LAST", "NEXT", "ATTEMPT"]
    rows = {line.split()[2]: line.split() for line in lines[1:] if not line.startswith(" ")}
    assert rows["ci"][6:10] == ["team/app", "DELIVERED", "2", "200"]
    assert rows["old-chat"][6:10] == ["team/app", "FAILED", "1", "410"]
    attempts = [line.split()[:4] for line in lines if line.startswith("    attempt")]
    assert sorted(a[1] + ":" + a[3] for a in attempts) == ["1:410", "1:503", "2:200"]
    assert SECRET not in out and "t0k" not in out


def test_deliveries_json_has_the_history(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    asyncio.run(deliver_twice(data))

    assert berth("webhooks", "deliveries", "--data", str(data), "--json", "--limit", "1") == 0
    [delivery] = json.loads(capsys.readouterr().out)["deliveries"]
    assert delivery["status"] in ("DELIVERED", "FAILED")
    assert [a["number"] for a in delivery["history"]] == list(range(1, delivery["attempts"] + 1))
    raw = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("metadata.db"))
    assert SECRET.encode() not in raw and b"t0k" not in raw  # never stored, not just not shown


def test_missing_database_is_an_error_not_a_new_file(tmp_path, capsys):
    assert berth("webhooks", "deliveries", "--data", str(tmp_path / "nowhere")) == 1
    assert "no metadata database" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_deliveries_are_read_from_the_configured_postgresql_database(tmp_path, capsys,
                                                                     postgres):
    """A delivery queued on PostgreSQL and not attempted yet is listed as PENDING."""
    from registry.config import load_config
    from registry.metadata.factory import open_store
    from registry.metadata.writes import NewJob, apply
    from scanner.webhook_log import DELIVER_JOB

    url = postgres.create_database("webhookcli")
    config_file = tmp_path / "berth.toml"
    config_file.write_text(f'data_dir = "{tmp_path / "data"}"\n[metadata]\nurl = "{url}"\n'
                           'upgrade = "auto"\n')
    (tmp_path / "data").mkdir()

    async def queue() -> None:
        store = open_store(load_config(config_file, environ={}))
        event = {"id": "ev-1", "detail-type": "ECR Image Action",
                 "detail": {"repository-name": "team/app"}}
        try:
            await store.db.write(lambda c: apply(c, [NewJob(DELIVER_JOB, {
                "delivery": "dl-1", "endpoint": "ci", "event": event})], now=1_700_000_000.0))
        finally:
            await store.close()

    asyncio.run(queue())
    assert berth("webhooks", "deliveries", "--config", str(config_file), "--json") == 0
    [delivery] = json.loads(capsys.readouterr().out)["deliveries"]
    assert (delivery["id"], delivery["endpoint"], delivery["repository"]) == (
        "dl-1", "ci", "team/app")
    assert (delivery["status"], delivery["attempts"], delivery["history"]) == ("PENDING", 0, [])
