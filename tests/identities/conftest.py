"""Fixtures for the identity tests: ``Identities`` over a fresh metadata store on every backend
(SQLite and PostgreSQL, from the contract suite's fixtures), a controllable clock."""

from __future__ import annotations

import json

import pytest

from registry.auth.identities import Identities
from registry.auth.keys import SecretBox, load_or_create_master_key
from tests.metadata.conftest import backend, metadata_config, store_factory  # noqa: F401

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
def metadata(store_factory):
    """The metadata store under the identities (a migrated, empty database)."""
    return store_factory()


@pytest.fixture
def store(metadata, box) -> Identities:
    return Identities(metadata, box)
