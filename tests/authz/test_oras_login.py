"""oras-py's default login flow against an authorization-on Berth.

oras-py's default (``token``) backend answers any challenge by fetching a token from the
realm, whatever the scheme. ECR's realm is the registry's own URL; Berth's must be too, and
``GET /`` there hands the registry password back in the token-service shape, so the client
then sends ``Bearer <password>``. Today's ``realm="Berth"`` sent oras to a host named berth.
"""

from __future__ import annotations

import oras.client
import pytest
import requests

from tests.authz.conftest import registry_password

pytestmark = pytest.mark.clients


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # oras push only accepts files below the current directory
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()
    return tmp_path


def test_challenge_realm_is_the_registry_itself(auth_server):
    response = requests.get(auth_server.url + "/v2/", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == \
        f'Basic realm="http://{auth_server.server.host}/",service="ecr.amazonaws.com"'
    # A repository route challenges the same way (ECR: "Not Authorized" on every route).
    response = requests.get(auth_server.url + "/v2/some/repo/tags/list", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith(
        f'Basic realm="http://{auth_server.server.host}/"')


def test_realm_answers_token_clients_only_with_valid_credentials(auth_server):
    password = registry_password(auth_server)
    refused = requests.get(auth_server.url + "/?service=ecr.amazonaws.com", timeout=10)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    forged = requests.get(auth_server.url + "/", auth=("AWS", password[:-3] + "AAA"),
                          timeout=10)
    assert forged.status_code == 401
    granted = requests.get(auth_server.url + "/?service=ecr.amazonaws.com",
                           auth=("AWS", password), timeout=10)
    assert granted.status_code == 200
    body = granted.json()
    assert body["token"] == body["access_token"] == password
    assert 0 < body["expires_in"] <= 12 * 3600
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert requests.get(auth_server.url + "/v2/", headers=bearer, timeout=10).status_code == 200


def test_oras_default_login_pushes_and_pulls(auth_server, workdir, unique):
    password = registry_password(auth_server)
    client = oras.client.OrasClient(hostname=auth_server.server.host, insecure=True)
    assert client.auth.__class__.__name__ == "TokenAuth"  # the default backend
    client.login(username="AWS", password=password, hostname=auth_server.server.host,
                 config_path=str(workdir / "docker" / "config.json"))
    payload = f"pushed by oras-py after its default login ({unique})\n".encode()
    (workdir / "notes.txt").write_bytes(payload)
    target = f"{auth_server.server.host}/oras-login/{unique}:v1"
    response = client.push(target=target, files=["notes.txt:text/plain"], quiet=True)
    assert response.status_code == 201, response.text
    pulled = client.pull(target=target, outdir=str(workdir / "pulled"))
    assert [p.rsplit("/", 1)[-1] for p in pulled] == ["notes.txt"]
    assert (workdir / "pulled" / "notes.txt").read_bytes() == payload
