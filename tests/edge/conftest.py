"""Live Berth servers with authorization on and short connection timeouts.

``tight`` gives a request head or a body one second, so a test can watch a half-sent request
being dropped, while its idle timeout stays long (60 s) so that only the head and body
deadlines can explain a quick drop; ``idle`` closes idle connections after two seconds.
Timeouts are set through ``BERTH_SERVER__*`` as an operator would.
"""

from __future__ import annotations

import pytest
import requests

from tests.ecr.conftest import AuthServer
from tests.support.server import BerthServer

TIGHT = {"BERTH_SERVER__HEADER_TIMEOUT_SECONDS": "1", "BERTH_SERVER__BODY_TIMEOUT_SECONDS": "1",
         "BERTH_SERVER__KEEPALIVE_TIMEOUT_SECONDS": "60", "BERTH_SERVER__LINGER_SECONDS": "1"}
IDLE = {"BERTH_SERVER__KEEPALIVE_TIMEOUT_SECONDS": "2"}


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    server = BerthServer(tmp_path_factory.mktemp("berth-tight"), env=TIGHT, workers=1)
    server.start()
    yield AuthServer(server)
    server.stop()


@pytest.fixture(scope="module")
def idle(tmp_path_factory):
    server = BerthServer(tmp_path_factory.mktemp("berth-idle"), env=IDLE, workers=1)
    server.start()
    yield AuthServer(server)
    server.stop()


@pytest.fixture(scope="module")
def relaxed(tmp_path_factory):
    """Default timeouts but for a short linger: the server a memory test hammers."""
    server = BerthServer(tmp_path_factory.mktemp("berth-relaxed"), workers=1,
                         env={"BERTH_SERVER__LINGER_SECONDS": "2"})
    server.start()
    yield AuthServer(server)
    server.stop()


def registry_token(auth: AuthServer) -> dict[str, str]:
    """Basic credentials for /v2/, from GetAuthorizationToken as docker login gets them."""
    data = auth.client().get_authorization_token()["authorizationData"][0]
    return {"Authorization": "Basic " + data["authorizationToken"]}


def start_upload(auth: AuthServer, repo: str) -> str:
    """A fresh blob upload session's path."""
    response = requests.post(f"{auth.url}/v2/{repo}/blobs/uploads/",
                             headers=registry_token(auth), timeout=10)
    assert response.status_code == 202, response.text
    return response.headers["Location"]
