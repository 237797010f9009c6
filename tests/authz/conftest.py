"""Authorization-on servers and helpers for the leak, revocation and protection tests."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests

from registry.app import create_app
from registry.config import load_config
from tests.ecr.conftest import AuthServer, Credentials
from tests.support.server import BerthServer

ALLOW_TOKEN = {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": [ALLOW_TOKEN, *statements]}


def allow(actions: list[str], resource: str = "*") -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


def registry_password(auth_server: AuthServer, creds: Credentials | None = None) -> str:
    data = auth_server.client(creds).get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS"
    return password


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()}


class V2:
    """/v2/ requests as one caller (a registry password), over HTTP."""

    def __init__(self, auth_server: AuthServer, password: str | None) -> None:
        self.url = auth_server.url
        self.headers = basic(password) if password else {}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    server = BerthServer(tmp_path_factory.mktemp("berth-authz"))
    server.start()
    yield AuthServer(server)
    server.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


def dumps(document: dict) -> str:
    return json.dumps(document)


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    """An in-process app with authorization off (the tests drive the protocol, not IAM)."""
    config = load_config(environ={}, overrides={
        "data_dir": str(tmp_path / "data"), "gc.enabled": False, "auth.enabled": False,
        "scanner.enabled": False})
    return await aiohttp_client(create_app(config))
