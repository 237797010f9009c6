"""Fixtures for the identity tests: a store on a temporary SQLite file, a controllable clock."""

from __future__ import annotations

import json

import pytest

from registry.auth.identities import IdentityStore
from registry.auth.keys import SecretBox, load_or_create_master_key

ACCOUNT = "000000000000"
OTHER_ACCOUNT = "111122223333"

PULL_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "Pull", "Effect": "Allow",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetAuthorizationToken"],
    "Resource": "*"}]})
PUSH_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload"],
    "Resource": "arn:aws:ecr:us-east-1:000000000000:repository/app/*"}]})
# Two problems, each with its element path: Statement[0].Effect and Statement[1].Condition.
BROKEN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Alow", "Action": "ecr:BatchGetImage", "Resource": "*"},
    {"Effect": "Allow", "Action": "ecr:PutImage", "Resource": "*",
     "Condition": {"StringEqualz": {"aws:username": "bob"}}}]})


class Clock:
    """A hand-turned clock for TTL tests: no sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box(tmp_path) -> SecretBox:
    return SecretBox(load_or_create_master_key(tmp_path))


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "metadata.db"


@pytest.fixture
def store(db_path, box):
    s = IdentityStore(db_path, box)
    yield s
    s.close()
