"""The small-blob cache verifies what it loads: a corrupt small file on disk is answered as a
missing blob (never served from memory), counted and logged (issue 8)."""

from __future__ import annotations

import logging

from tests.integrity.conftest import metric
from tests.oci.helpers import error_code, push_blob, push_image, sha256

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


async def test_corrupt_small_blob_is_unknown_not_served(make_client, app_config, caplog):
    first = await make_client()
    data = b"small layer " * 1000
    digest = await push_blob(first, "lib/app", data)
    path = app_config.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.write_bytes(data.replace(b"small", b"SMALL", 1))
    with caplog.at_level(logging.ERROR, logger="registry.blobcache"):
        for _ in range(2):  # refused bytes are not cached: every read re-checks
            resp = await first.get(f"/v2/lib/app/blobs/{digest}")
            assert resp.status == 404 and await error_code(resp) == "BLOB_UNKNOWN"
    assert metric(first, "berth_blob_corruptions_found_total", source="cache") == 2
    assert [r.getMessage() for r in caplog.records] == ["corrupt blob read from storage"] * 2
    assert caplog.records[0].digest == digest
    # A correct push heals the file (publish replaces it) and the blob is served again.
    await push_blob(first, "lib/app", data)
    resp = await first.get(f"/v2/lib/app/blobs/{digest}")
    assert resp.status == 200 and await resp.read() == data
    assert (await first.get(f"/v2/lib/app/blobs/{digest}", headers={"Range": "bytes=0-4"})
            ).status == 206


async def test_corrupt_manifest_is_unknown_to_a_fresh_cache(make_client, app_config):
    first = await make_client()
    digest, body = await push_image(first, "lib/app", "v1")
    path = app_config.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.write_bytes(body.replace(b"schemaVersion", b"schemaVersioN"))
    resp = await first.get("/v2/lib/app/manifests/v1")  # this process cached it on push
    assert resp.status == 200 and sha256(await resp.read()) == digest
    second = await make_client()  # another worker, or after a restart
    for reference in ("v1", digest):
        resp = await second.get(f"/v2/lib/app/manifests/{reference}", headers={"Accept": MANIFEST})
        assert resp.status == 404 and await error_code(resp) == "MANIFEST_UNKNOWN"
    assert metric(second, "berth_blob_corruptions_found_total", source="cache") == 2


async def test_batch_get_image_never_hands_out_a_corrupt_manifest(make_client, app_config):
    first = await make_client()
    digest, body = await push_image(first, "lib/app", "v1")
    path = app_config.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.write_bytes(body.replace(b"schemaVersion", b"schemaVersioN"))
    second = await make_client()  # a process that has not cached the manifest
    resp = await second.post("/", json={"repositoryName": "lib/app",
                                        "imageIds": [{"imageTag": "v1"}]}, headers={
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.BatchGetImage",
        "Content-Type": "application/x-amz-json-1.1"})
    assert resp.status == 200
    answer = await resp.json(content_type=None)
    assert answer["images"] == []
    assert [f["failureCode"] for f in answer["failures"]] == ["ImageInaccessible"]
    assert metric(second, "berth_blob_corruptions_found_total", source="cache") == 1
