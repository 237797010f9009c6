"""Caps on open upload sessions, per repository and per principal, on both APIs, across two
worker processes: /v2/ answers 429 TOOMANYREQUESTS, ECR LimitExceededException; finishing or
cancelling a session frees its slot (issue 8)."""

from __future__ import annotations

import hashlib

import pytest
import requests
from botocore.exceptions import ClientError

from tests.ecr.conftest import AuthServer
from tests.support.server import BerthServer

ALLOW_ALL = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}


@pytest.fixture
def capped(tmp_path):
    env = {"BERTH_UPLOADS__MAX_SESSIONS_PER_REPOSITORY": "2",
           "BERTH_UPLOADS__MAX_SESSIONS_PER_PRINCIPAL": "3"}
    with BerthServer(tmp_path / "berth", workers=2, env=env) as server:
        yield AuthServer(server)


class Pusher:
    """One principal, on both APIs."""

    def __init__(self, auth: AuthServer, creds) -> None:
        self.url = auth.url
        self.ecr = auth.client(creds)
        token = self.ecr.get_authorization_token()["authorizationData"][0]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Basic {token['authorizationToken']}"

    def post(self, repo: str) -> requests.Response:
        return self.http.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=30)

    def initiate(self, repo: str) -> str:
        return self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]


def refused(response: requests.Response, key: str) -> bool:
    error = response.json()["errors"][0]
    return (response.status_code == 429 and error["code"] == "TOOMANYREQUESTS"
            and f"[uploads] {key}" in error["message"] and "DELETE" in error["message"])


def limit_exceeded(pusher: Pusher, repo: str, key: str) -> bool:
    with pytest.raises(ClientError) as info:
        pusher.initiate(repo)
    error = info.value.response["Error"]
    return error["Code"] == "LimitExceededException" and f"[uploads] {key}" in error["Message"]


def test_caps_per_repository_and_principal_on_both_apis(capped):
    admin = Pusher(capped, capped.admin)
    bob = Pusher(capped, capped.make_user("bob", ALLOW_ALL))
    a1, a2 = (admin.post("capped/a") for _ in range(2))
    assert a1.status_code == a2.status_code == 202
    assert refused(admin.post("capped/a"), "max_sessions_per_repository")
    assert refused(bob.post("capped/a"), "max_sessions_per_repository")
    assert limit_exceeded(admin, "capped/a", "max_sessions_per_repository")
    assert admin.post("capped/b").status_code == 202  # admin's third session
    assert refused(admin.post("capped/c"), "max_sessions_per_principal")
    assert limit_exceeded(admin, "capped/b", "max_sessions_per_principal")
    assert bob.post("capped/c").status_code == 202  # bob has slots of his own

    # Cancelling frees a slot of the repository and of the principal...
    gone = admin.http.delete(capped.url + a1.headers["Location"], timeout=30)
    assert gone.status_code == 204
    upload_id = admin.initiate("capped/a")
    assert refused(admin.post("capped/a"), "max_sessions_per_repository")
    # ... and so does finishing, on /v2/ ...
    data = b"layer bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = admin.http.put(f"{capped.url}{a2.headers['Location']}?digest={digest}", data=data,
                          timeout=30)
    assert done.status_code == 201, done.text
    assert bob.initiate("capped/a")
    assert limit_exceeded(admin, "capped/a", "max_sessions_per_repository")
    # ... and on ECR.
    part = b"another layer"
    admin.ecr.upload_layer_part(repositoryName="capped/a", uploadId=upload_id,
                                partFirstByte=0, partLastByte=len(part) - 1,
                                layerPartBlob=part)
    admin.ecr.complete_layer_upload(repositoryName="capped/a", uploadId=upload_id,
                                    layerDigests=["sha256:" + hashlib.sha256(part).hexdigest()])
    assert admin.post("capped/a").status_code == 202
    metrics = requests.get(f"{capped.url}/metrics", timeout=10).text
    assert 'berth_upload_sessions_refused_total{scope="repository"} 5.0' in metrics
    assert 'berth_upload_sessions_refused_total{scope="principal"} 2.0' in metrics


def test_caps_are_checked_before_any_session_is_created(capped):
    admin = Pusher(capped, capped.admin)
    for _ in range(2):
        assert admin.post("capped/full").status_code == 202
    sessions = list((capped.server.data_dir / "uploads").iterdir())
    for _ in range(5):
        assert admin.post("capped/full").status_code == 429
    assert list((capped.server.data_dir / "uploads").iterdir()) == sessions


async def test_a_refused_post_leaves_no_session_to_hold_a_slot(make_client, app_config):
    client = await make_client()
    for _ in range(3):
        resp = await client.post("/v2/lib/app/blobs/uploads/", data=b"body without digest")
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert list((app_config.data_dir / "uploads").iterdir()) == []
