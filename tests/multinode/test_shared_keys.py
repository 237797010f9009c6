"""Stateless nodes share one master key (issue 10, item 5): two `berth serve` nodes, each with
a data directory of its own, on one PostgreSQL database, both naming the same `[keys]
key_file`. An access key made through node 1 signs requests node 2 accepts (SigV4, boto3),
and a registry password node 1 issued logs in to node 2's /v2/. The control: a third node on
the same database with a key of its own (the data directory's master.key) accepts neither.

Different data directories need a shared database, so this runs on PostgreSQL whatever
BERTH_TEST_METADATA says (SQLite lives inside one data directory).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.ecr.conftest import Credentials, read_credentials
from tests.support.server import BerthServer

REGION = "us-east-1"
ALL_ECR = {"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}


def berth(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The `berth` command as an operator runs it, with a node's configuration."""
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def ecr(node: BerthServer, creds: Credentials):
    return boto3.client("ecr", endpoint_url=node.url, region_name=REGION,
                        aws_access_key_id=creds.key_id, aws_secret_access_key=creds.secret,
                        config=BotoConfig(retries={"max_attempts": 1}))


def login_password(node: BerthServer, creds: Credentials) -> str:
    """What `aws ecr get-login-password` prints, asked of ``node``."""
    data = ecr(node, creds).get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS"
    return password


def v2(node: BerthServer, password: str) -> requests.Response:
    token = base64.b64encode(f"AWS:{password}".encode()).decode()
    return requests.get(node.url + "/v2/", headers={"Authorization": f"Basic {token}"},
                        timeout=10)


@dataclass
class Cluster:
    one: BerthServer
    two: BerthServer
    stranger: BerthServer  # same database, a key of its own
    admin: Credentials


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory):
    key = tmp_path_factory.mktemp("keys") / "berth.key"
    made = berth("keys", "generate", str(key), env={})
    assert made.returncode == 0, made.stderr
    database = {"BERTH_METADATA__URL": postgres.create_database("sharedkeys"),
                "BERTH_METADATA__UPGRADE": "auto", "BERTH_SCANNER__ENABLED": "false"}
    shared = {**database, "BERTH_KEYS__KEY_FILE": str(key)}
    started: list[BerthServer] = []
    try:
        for name, env in (("one", shared), ("two", shared), ("stranger", database)):
            started.append(BerthServer(tmp_path_factory.mktemp(f"node-{name}"), env=env).start())
        one, two, stranger = started
        yield Cluster(one, two, stranger, read_credentials(one.data_dir / "credentials"))
    finally:
        for server in started:
            server.stop()


def make_user(node: BerthServer) -> Credentials:
    """A user with an access key and an ecr:* policy, made with `berth iam` on ``node``."""
    name = f"ci-{uuid.uuid4().hex[:8]}"

    def iam(*args: str) -> str:
        done = berth("iam", *args, "--data", str(node.data_dir), env=node.env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    iam("create-user", "--user-name", name)
    key = json.loads(iam("create-access-key", "--user-name", name))["AccessKey"]
    iam("put-user-policy", "--user-name", name, "--policy-name", "all",
        "--policy-document", json.dumps(ALL_ECR))
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def test_the_nodes_share_one_key_and_write_none_of_their_own(cluster):
    assert (cluster.one.data_dir / "credentials").is_file()  # the first start ran once
    assert not (cluster.two.data_dir / "credentials").exists()
    for node in (cluster.one, cluster.two):
        assert not (node.data_dir / "master.key").exists()
    ids = [berth("keys", "id", "--data", str(node.data_dir), env=node.env).stdout.strip()
           for node in (cluster.one, cluster.two, cluster.stranger)]
    assert ids[0] == ids[1] != ids[2] and len(ids[0]) == 16


def test_an_access_key_made_through_node_one_signs_requests_node_two_accepts(cluster):
    creds = make_user(cluster.one)
    name = f"shared-keys/{uuid.uuid4().hex[:8]}"
    ecr(cluster.two, creds).create_repository(repositoryName=name)
    listed = ecr(cluster.one, creds).describe_repositories(repositoryNames=[name])
    assert [r["repositoryName"] for r in listed["repositories"]] == [name]
    # The first start's administrator key, sealed by node one, works on node two as well.
    assert ecr(cluster.two, cluster.admin).describe_repositories()["repositories"]


def test_a_registry_password_from_one_node_logs_in_on_the_other(cluster):
    for issuer, verifier in ((cluster.one, cluster.two), (cluster.two, cluster.one)):
        password = login_password(issuer, cluster.admin)
        assert v2(verifier, password).status_code == 200
    creds = make_user(cluster.two)
    assert v2(cluster.one, login_password(cluster.two, creds)).status_code == 200


def test_a_node_with_a_key_of_its_own_accepts_neither(cluster):
    refused = v2(cluster.stranger, login_password(cluster.one, cluster.admin))
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")
    with pytest.raises(ClientError):
        ecr(cluster.stranger, cluster.admin).describe_repositories()
    assert "which is not configured" in cluster.stranger.log()
