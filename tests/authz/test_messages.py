"""Error texts that say what to do (issue 8, §7): an expired registry token names the login
command for this host; a push to a missing repository with ``create_on_push = false`` names
the command that creates it."""

from __future__ import annotations

import time

import pytest
import requests

from registry.app import create_app
from registry.auth.keys import MasterKeys, load_or_create_master_key, token_signer
from registry.config import load_config
from tests.authz.conftest import basic
from tests.oci.helpers import image_manifest, sha256


def test_expired_registry_token_says_to_log_in_again(auth_server):
    signer = token_signer(MasterKeys(load_or_create_master_key(auth_server.server.data_dir)))
    expired, _ = signer.issue(
        principal_arn="arn:aws:iam::000000000000:user/admin", account="000000000000",
        user_id="AIDAEXPIREDTOKENTEST1", access_key_id=auth_server.admin.key_id,
        now=time.time() - 13 * 3600)
    response = requests.get(auth_server.url + "/v2/", headers=basic(expired), timeout=10)
    assert response.status_code == 401
    assert response.json()["errors"][0] == {
        "code": "UNAUTHORIZED",
        "message": "authorization token has expired: run 'aws ecr get-login-password | docker "
                   f"login --username AWS --password-stdin {auth_server.server.host}' again"}


@pytest.fixture
async def strict_client(aiohttp_client, tmp_path):
    config = load_config(environ={}, overrides={
        "data_dir": str(tmp_path / "data"), "gc.enabled": False, "auth.enabled": False,
        "scanner.enabled": False, "create_on_push": False})
    return await aiohttp_client(create_app(config))


HINT = ("The repository with name 'not/created' does not exist in the registry with id "
        "'000000000000'; this registry does not create repositories on push "
        "(create_on_push = false): create it first with "
        "'aws ecr create-repository --repository-name not/created'")


async def test_push_to_a_missing_repository_suggests_creating_it(strict_client):
    data = b"layer"
    attempts = [
        strict_client.post("/v2/not/created/blobs/uploads/"),
        strict_client.post(f"/v2/not/created/blobs/uploads/?digest={sha256(data)}", data=data),
        strict_client.put("/v2/not/created/manifests/v1", data=image_manifest(b"{}", [data]),
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status == 404
        error = (await response.json())["errors"][0]
        assert error["code"] == "NAME_UNKNOWN"
        assert error["message"] == HINT
    # Pulls of a missing repository keep ECR's plain text: there is nothing to create.
    response = await strict_client.get("/v2/not/created/tags/list")
    assert (await response.json())["errors"][0]["message"].endswith("'000000000000'")
