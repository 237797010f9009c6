"""Registry passwords die with their user or access key (issue 8, §3).

A password from GetAuthorizationToken is self-verifying, but it names the access key that
obtained it: every /v2/ request checks, through the per-process credential cache (5 s), that
the key is still active and still the same user's. Changes go through the real CLI against a
running server; the tests poll /v2/ instead of sleeping for the cache window.
"""

from __future__ import annotations

import json
import time

import pytest

from registry.auth.credential_cache import CredentialCache
from tests.authz.conftest import V2, allow, policy, registry_password
from tests.ecr.conftest import Credentials

WINDOW = 5.0  # CredentialCache's default TTL
DEADLINE = WINDOW + 3.0  # the window plus slack for a busy machine


def wait_for_status(v2: V2, status: int, deadline: float = DEADLINE):
    """Poll GET /v2/ until it answers ``status``; return (response, seconds waited)."""
    started = time.monotonic()
    while True:
        response = v2.get("/v2/")
        waited = time.monotonic() - started
        if response.status_code == status or waited > deadline:
            return response, waited
        time.sleep(0.2)


def new_user(auth_server, unique: str):
    name = f"revoke-{unique}"
    creds = auth_server.make_user(name, policy(allow(["ecr:ListImages"])))
    return name, creds


def test_default_window_is_the_credential_cache_ttl():
    assert CredentialCache(identities=None).ttl == WINDOW  # type: ignore[arg-type]


def test_token_fails_after_its_user_is_deleted(auth_server, unique):
    name, creds = new_user(auth_server, unique)
    v2 = V2(auth_server, registry_password(auth_server, creds))
    assert v2.get("/v2/").status_code == 200
    auth_server.berth("iam", "delete-user", "--user-name", name, "--force")
    response, waited = wait_for_status(v2, 401)
    assert response.status_code == 401, f"token still accepted {waited:.1f}s after deletion"
    error = response.json()["errors"][0]
    assert error["code"] == "UNAUTHORIZED"
    assert "no longer valid" in error["message"]
    assert "aws ecr get-login-password" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    # A new user of the same name is another identity: the old password stays dead.
    auth_server.make_user(name, policy(allow(["ecr:ListImages"])))
    assert v2.get("/v2/").status_code == 401


def test_token_fails_while_its_key_is_inactive_and_after_the_key_is_deleted(auth_server,
                                                                           unique):
    name, creds = new_user(auth_server, unique)
    v2 = V2(auth_server, registry_password(auth_server, creds))
    assert v2.get("/v2/").status_code == 200
    auth_server.berth("iam", "update-access-key", "--user-name", name, "--access-key-id",
                      creds.key_id, "--status", "Inactive")
    response, waited = wait_for_status(v2, 401)
    assert response.status_code == 401, f"token still accepted {waited:.1f}s after deactivation"
    assert "no longer valid" in response.json()["errors"][0]["message"]
    # Only the password of that key is refused: the user's other key still logs in.
    other = json.loads(auth_server.berth("iam", "create-access-key", "--user-name",
                                         name).stdout)["AccessKey"]
    other_v2 = V2(auth_server, registry_password(
        auth_server, Credentials(other["AccessKeyId"], other["SecretAccessKey"])))
    assert other_v2.get("/v2/").status_code == 200
    # Reactivated, the same password is good again (it was never itself revoked).
    auth_server.berth("iam", "update-access-key", "--user-name", name, "--access-key-id",
                      creds.key_id, "--status", "Active")
    response, waited = wait_for_status(v2, 200)
    assert response.status_code == 200, f"still refused {waited:.1f}s after reactivation"
    auth_server.berth("iam", "delete-access-key", "--user-name", name, "--access-key-id",
                      creds.key_id)
    response, waited = wait_for_status(v2, 401)
    assert response.status_code == 401, f"token still accepted {waited:.1f}s after deletion"
    assert other_v2.get("/v2/").status_code == 200


def test_revoked_token_cannot_pull_either(auth_server, unique):
    """Not only /v2/: every repository route refuses the password, with the challenge."""
    name, creds = new_user(auth_server, unique)
    password = registry_password(auth_server, creds)
    v2 = V2(auth_server, password)
    auth_server.client().create_repository(repositoryName=f"revoked/{unique}")
    assert v2.get(f"/v2/revoked/{unique}/tags/list").status_code == 200
    auth_server.berth("iam", "delete-user", "--user-name", name, "--force")
    response, _ = wait_for_status(v2, 401)
    assert response.status_code == 401
    refused = v2.get(f"/v2/revoked/{unique}/tags/list")
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
