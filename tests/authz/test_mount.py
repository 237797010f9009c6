"""Cross-repository mount needs what AWS documents: ``ecr:GetDownloadUrlForLayer`` on the
source repository (issue 8, §3). Without it the POST falls back to a normal upload session
(202), exactly like a mount from a missing repository, so the answer reveals nothing."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.authz.conftest import V2, allow, policy, registry_password

PUSH = ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
        "ecr:BatchCheckLayerAvailability", "ecr:PutImage"]


def arn(name: str) -> str:
    return f"arn:aws:ecr:us-east-1:000000000000:repository/{name}"


@pytest.fixture(scope="module")
def source(auth_server):
    auth_server.client().put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
    name = f"mount-source/{os.urandom(4).hex()}"
    data = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    admin = V2(auth_server, registry_password(auth_server))
    pushed = admin.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data=data)
    assert pushed.status_code == 201, pushed.text
    return name, digest, data


def pusher(auth_server, source_name: str, target: str, source_actions: list[str]) -> V2:
    creds = auth_server.make_user(policy=policy(allow(PUSH, arn(target)),
                                                allow(source_actions, arn(source_name))))
    return V2(auth_server, registry_password(auth_server, creds))


def mount(v2: V2, target: str, digest: str, source_name: str):
    return v2.request("POST", f"/v2/{target}/blobs/uploads/?mount={digest}&from={source_name}")


def test_mount_without_get_download_url_for_layer_falls_back_to_an_upload(auth_server,
                                                                          source, unique):
    source_name, digest, _ = source
    target = f"mount-target/{unique}"
    v2 = pusher(auth_server, source_name, target, ["ecr:BatchGetImage",
                                                   "ecr:BatchCheckLayerAvailability"])
    response = mount(v2, target, digest, source_name)
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(f"/v2/{target}/blobs/uploads/")
    assert response.headers["Range"] == "0-0"
    assert v2.request("HEAD", f"/v2/{target}/blobs/{digest}").status_code == 404
    # Indistinguishable from a mount whose source does not exist.
    missing = mount(v2, target, digest, f"mount-source/{unique}-missing")
    assert missing.status_code == 202
    assert set(missing.headers) >= {"Location", "Range", "Docker-Upload-UUID"}
    assert missing.content == response.content == b""


def test_mount_with_get_download_url_for_layer_links_the_blob(auth_server, source, unique):
    source_name, digest, data = source
    target = f"mount-target/{unique}"
    v2 = pusher(auth_server, source_name, target, ["ecr:GetDownloadUrlForLayer"])
    response = mount(v2, target, digest, source_name)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v2/{target}/blobs/{digest}"
    admin = V2(auth_server, registry_password(auth_server))
    assert admin.get(f"/v2/{target}/blobs/{digest}").content == data
