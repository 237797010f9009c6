"""Identity policies kept as files: the server reloads them; a broken file keeps the last
valid set in force and is reported."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from tests.ecr.conftest import AuthServer
from tests.support.server import BerthServer

ALLOW_DESCRIBE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": "*"}]}
ALLOW_CREATE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ecr:DescribeRepositories", "ecr:CreateRepository"],
     "Resource": "*"}]}


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def allowed(client, call) -> bool:
    try:
        call(client)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "AccessDeniedException":
            return False
        raise
    return True


@pytest.fixture
def file_server(tmp_path):
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    server = BerthServer(tmp_path / "srv", env={
        "BERTH_AUTH__POLICY_DIR": str(policy_dir), "BERTH_AUTH__POLICY_RELOAD_SECONDS": "1"})
    server.start()
    yield AuthServer(server), policy_dir
    server.stop()


def test_policy_files_reload_and_keep_last_valid(file_server):
    auth_server, policy_dir = file_server
    creds = auth_server.make_user("filer")
    client = auth_server.client(creds)
    user_dir = policy_dir / "000000000000" / "filer"
    user_dir.mkdir(parents=True)
    describe = lambda c: c.describe_repositories()  # noqa: E731
    create = lambda c: c.create_repository(  # noqa: E731
        repositoryName=f"filer-{time.monotonic_ns()}")
    assert not allowed(client, describe)
    (user_dir / "read.json").write_text(json.dumps(ALLOW_DESCRIBE))
    assert wait_until(lambda: allowed(client, describe))
    assert not allowed(client, create)
    # A broken edit: reported, and the previous valid set stays in force.
    (user_dir / "read.json").write_text('{"Version": "2012-10-17", "Statement": [')
    assert wait_until(lambda: "read.json" in auth_server.server.log())
    time.sleep(1.5)
    assert allowed(client, describe)
    (user_dir / "read.json").write_text(json.dumps(ALLOW_CREATE))
    assert wait_until(lambda: allowed(client, create))
