"""Identity policy files that fail to parse in any way are reported and skipped: the server
starts, keeps reloading, and picks up the next good change (issue 8, 4)."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.ecr.conftest import AuthServer
from tests.input.conftest import ACCOUNT
from tests.support.server import BerthServer

ALLOW_DESCRIBE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": "*"}]})
HOSTILE = {  # file name: content (each under the 64 KiB file limit)
    "deep.json": b"[" * 30_000 + b"]" * 30_000,
    "huge-int.json": ALLOW_DESCRIBE.replace(
        '"Resource": "*"', '"Resource": "*", "Condition": {"NumericLessThan": '
        '{"aws:EpochTime": ' + "9" * 5000 + "}}").encode(),
    "surrogate.json": ALLOW_DESCRIBE.replace(
        '{"Effect"', '{"Sid": "\\ud800", "Effect"').encode(),
    "utf16.json": ALLOW_DESCRIBE.encode("utf-16"),
    "bom.json": b"\xef\xbb\xbf" + ALLOW_DESCRIBE.encode(),
    "garbage.json": bytes(range(256)) * 8,
}


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def can_describe(client) -> bool:
    try:
        client.describe_repositories()
    except client.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "AccessDeniedException":
            return False
        raise
    return True


@pytest.fixture
def hostile_tree(tmp_path):
    """A policy directory where every user's only file is hostile, plus a FIFO and a
    directory named like policy files."""
    root = tmp_path / "policies"
    for name, content in HOSTILE.items():
        user_dir = root / ACCOUNT / name.removesuffix(".json")
        user_dir.mkdir(parents=True)
        (user_dir / "p.json").write_bytes(content)
    (root / ACCOUNT / "deep" / "dir.json").mkdir()
    os.mkfifo(root / ACCOUNT / "deep" / "fifo.json")
    return root


def test_server_starts_with_hostile_policy_files_and_picks_up_the_fix(tmp_path, hostile_tree):
    server = BerthServer(tmp_path / "srv", env={
        "BERTH_AUTH__POLICY_DIR": str(hostile_tree), "BERTH_AUTH__POLICY_RELOAD_SECONDS": "1"})
    server.start()   # raises unless /healthz answers: the start-up reload did not kill it
    try:
        auth = AuthServer(server)
        clients = {name: auth.client(auth.make_user(name.removesuffix(".json")))
                   for name in HOSTILE}
        log = server.log()
        for name in HOSTILE:
            assert f"{hostile_tree / ACCOUNT / name.removesuffix('.json') / 'p.json'}" in log
        assert "Traceback" not in log
        for client in clients.values():
            assert not can_describe(client)
        # A later hostile edit is reported too, and the loop lives on.
        (hostile_tree / ACCOUNT / "bom" / "p.json").write_bytes(b"[" * 30_000)
        assert wait_until(lambda: server.log().count("bom/p.json") > log.count("bom/p.json"))
        # Fix every file: every user gets the policy at the next reload.
        for name in HOSTILE:
            (hostile_tree / ACCOUNT / name.removesuffix(".json") / "p.json").write_text(
                ALLOW_DESCRIBE)
        assert wait_until(lambda: all(can_describe(c) for c in clients.values()))
        assert server.running
        assert "Traceback" not in server.log()
    finally:
        server.stop()
