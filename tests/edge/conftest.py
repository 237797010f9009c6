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


def _server(name: str, env: dict[str, str]):
    """A module-scoped fixture ``name``: one Berth (1 worker, auth on) started with ``env``."""
    @pytest.fixture(scope="module", name=name)
    def fixture(tmp_path_factory):
        server = BerthServer(tmp_path_factory.mktemp(f"berth-{name}"), env=env, workers=1)
        server.start()
        yield AuthServer(server)
        server.stop()

    return fixture


tight = _server("tight", TIGHT)
idle = _server("idle", IDLE)
# Default timeouts but for a short linger: the server the memory test hammers.
relaxed = _server("relaxed", {"BERTH_SERVER__LINGER_SECONDS": "2"})


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
