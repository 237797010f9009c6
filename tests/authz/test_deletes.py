"""Deletes that keep images whole (issue 8, §5).

- /v2/ DELETE of a blob that a manifest of the repository uses, and of a manifest that an
  index of the repository references, are refused with 405 UNSUPPORTED (the OCI answer for a
  delete the registry will not do) naming what holds them, and change nothing.
- ECR BatchDeleteImage by tag is one transaction: a concurrent push that tags the same
  manifest is never lost.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3

import pytest

from registry.app import create_app
from registry.appkeys import CONFIG
from registry.config import load_config
from tests.authz.ecr_local import ecr_ok
from tests.oci.helpers import push_blob, push_image, sha256

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"



async def errors(response) -> dict:
    return (await response.json())["errors"][0]


async def push_index(client, repo: str, tag: str | None, children: list[tuple[str, bytes]]):
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [
        {"mediaType": MANIFEST_TYPE, "digest": digest, "size": len(body),
         "platform": {"architecture": "amd64", "os": "linux"}} for digest, body in children]
    }).encode()
    response = await client.put(f"/v2/{repo}/manifests/{tag or sha256(index)}", data=index,
                                headers={"Content-Type": INDEX_TYPE})
    assert response.status == 201, await response.text()
    return sha256(index)


async def test_a_blob_an_image_uses_cannot_be_deleted(client):
    digest, body = await push_image(client, "app/one", "v1")
    manifest = json.loads(body)
    for blob in [manifest["config"]["digest"], manifest["layers"][0]["digest"]]:
        refused = await client.delete(f"/v2/app/one/blobs/{blob}")
        assert refused.status == 405
        error = await errors(refused)
        assert error["code"] == "UNSUPPORTED"
        assert f"referenced by manifest {digest}" in error["message"]
        assert error["detail"] == {"digest": blob, "manifests": [digest]}
        assert (await client.get(f"/v2/app/one/blobs/{blob}")).status == 200  # unchanged
    assert (await client.get(f"/v2/app/one/manifests/v1",
                             headers={"Accept": MANIFEST_TYPE})).status == 200
    # Once the image is gone, its blobs may be unlinked.
    assert (await client.delete(f"/v2/app/one/manifests/{digest}")).status == 202
    blob = manifest["layers"][0]["digest"]
    assert (await client.delete(f"/v2/app/one/blobs/{blob}")).status == 202
    assert (await client.get(f"/v2/app/one/blobs/{blob}")).status == 404


async def test_an_unused_blob_is_deleted_and_another_repositorys_use_does_not_count(client):
    data = b"a layer pushed but not used yet"
    digest = await push_blob(client, "app/two", data)
    await push_blob(client, "app/other", data)
    assert (await client.delete(f"/v2/app/two/blobs/{digest}")).status == 202
    assert (await client.delete(f"/v2/app/two/blobs/{digest}")).status == 404


@pytest.mark.parametrize("index_tag", ["multi", None], ids=["tagged index", "untagged index"])
async def test_a_manifest_an_index_references_cannot_be_deleted(client, index_tag):
    child, body = await push_image(client, "app/three", "amd64")
    index = await push_index(client, "app/three", index_tag, [(child, body)])
    refused = await client.delete(f"/v2/app/three/manifests/{child}")
    assert refused.status == 405
    error = await errors(refused)
    assert error["code"] == "UNSUPPORTED"
    assert f"referenced by the index {index}" in error["message"]
    assert "ImageReferencedByManifestList" in error["message"]
    assert (await client.get(f"/v2/app/three/manifests/{child}",
                             headers={"Accept": MANIFEST_TYPE})).status == 200
    assert (await client.get(f"/v2/app/three/manifests/amd64",
                             headers={"Accept": MANIFEST_TYPE})).status == 200
    # ECR's BatchDeleteImage refuses the same way.
    result = await ecr_ok(client, "BatchDeleteImage", repositoryName="app/three",
                          imageIds=[{"imageDigest": child}])
    assert result["failures"][0]["failureCode"] == "ImageReferencedByManifestList"
    assert (await client.delete(f"/v2/app/three/manifests/{index}")).status == 202
    assert (await client.delete(f"/v2/app/three/manifests/{child}")).status == 202


async def test_batch_delete_by_tag_never_loses_a_concurrent_tag_of_the_same_image(client):
    rounds = 40
    lost = []
    for n in range(rounds):
        repo = f"race/r{n}"
        digest, body = await push_image(client, repo, "a", layers=1)

        async def delete_a():
            await asyncio.sleep(random.random() * 0.004)
            return await ecr_ok(client, "BatchDeleteImage", repositoryName=repo,
                                imageIds=[{"imageTag": "a"}])

        async def tag_b():
            await asyncio.sleep(random.random() * 0.004)
            response = await client.put(f"/v2/{repo}/manifests/b", data=body,
                                        headers={"Content-Type": MANIFEST_TYPE})
            assert response.status == 201, await response.text()

        deleted, _ = await asyncio.gather(delete_a(), tag_b())
        assert deleted["imageIds"] == [{"imageDigest": digest, "imageTag": "a"}]
        b = await client.get(f"/v2/{repo}/manifests/b", headers={"Accept": MANIFEST_TYPE})
        a = await client.get(f"/v2/{repo}/manifests/a", headers={"Accept": MANIFEST_TYPE})
        assert a.status == 404
        if b.status != 200 or b.headers["Docker-Content-Digest"] != digest:
            lost.append(n)
    assert lost == [], f"tag b lost in rounds {lost} of {rounds}"


async def test_batch_delete_by_tag_removes_the_image_with_its_last_tag_and_one_event(client):
    digest, _ = await push_image(client, "app/four", "only", layers=1)
    result = await ecr_ok(client, "BatchDeleteImage", repositoryName="app/four",
                          imageIds=[{"imageTag": "only"}])
    assert result == {"imageIds": [{"imageDigest": digest, "imageTag": "only"}],
                      "failures": []}
    listed = await ecr_ok(client, "ListImages", repositoryName="app/four")
    assert listed["imageIds"] == []
    with sqlite3.connect(client.server.app[CONFIG].metadata_path) as conn:
        events = [json.loads(payload) for kind, payload in conn.execute(
            "SELECT kind, payload FROM events WHERE kind = 'image.deleted'")]
    assert events == [{"account": "000000000000", "repository": "app/four", "digest": digest,
                       "tag": "only"}]
