"""A live Berth with authorization on, and real AWS clients pointed at it.

The server bootstraps itself (account 000000000000, user ``admin``, ``<data>/credentials``);
tests talk to it with boto3, the aws CLI and docker exactly as a user would.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.support.metadata import cli_env
from tests.support.server import BerthServer

REGION = "us-east-1"


class Credentials:
    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret


def read_credentials(path: Path) -> Credentials:
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser["default"]
    return Credentials(section["aws_access_key_id"], section["aws_secret_access_key"])


class AuthServer:
    """A running Berth plus helpers to mint users and clients."""

    def __init__(self, server: BerthServer) -> None:
        self.server = server
        self.credentials_path = server.data_dir / "credentials"
        self.admin = read_credentials(self.credentials_path)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, creds: Credentials | None = None, service: str = "ecr", *,
               endpoint: str | None = None):
        creds = creds or self.admin
        return boto3.client(service, endpoint_url=endpoint or self.url, region_name=REGION,
                            aws_access_key_id=creds.key_id,
                            aws_secret_access_key=creds.secret,
                            config=BotoConfig(retries={"max_attempts": 1}))

    def berth(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "registry", *args, "--data",
                               str(self.server.data_dir)], capture_output=True, text=True,
                              check=check, timeout=60, env=cli_env(self.server.data_dir))

    def make_user(self, name: str | None = None, policy: dict | None = None, *,
                  account: str | None = None) -> Credentials:
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        extra = ["--account", account] if account else []
        self.berth("iam", "create-user", "--user-name", name, *extra)
        created = json.loads(self.berth("iam", "create-access-key", "--user-name", name,
                                        *extra).stdout)
        if policy is not None:
            self.berth("iam", "put-user-policy", "--user-name", name, "--policy-name", "p",
                       "--policy-document", json.dumps(policy), *extra)
        key = created["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def aws(self, *args: str, creds: Credentials | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "AWS_DEFAULT_REGION": REGION,
               "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_path),
               "AWS_CONFIG_FILE": os.devnull}
        env.pop("AWS_PROFILE", None)
        if creds is not None:
            env["AWS_ACCESS_KEY_ID"] = creds.key_id
            env["AWS_SECRET_ACCESS_KEY"] = creds.secret
        return subprocess.run(["aws", *args, "--endpoint-url", self.url], capture_output=True,
                              text=True, env=env, check=check, timeout=120)


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    server = BerthServer(tmp_path_factory.mktemp("berth-auth"))
    server.start()
    yield AuthServer(server)
    server.stop()


@pytest.fixture
def ecr(auth_server):
    return auth_server.client()


@pytest.fixture
def name(request) -> str:
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    return f"{base}/{uuid.uuid4().hex[:6]}"
