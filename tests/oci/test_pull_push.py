"""Push and pull over the OCI API: the MUSTs of reference A.2–A.4, one test each."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from registry.appkeys import METADATA
from tests.oci.helpers import error_code, push_blob, push_image, sha256, sha512

EMPTY = b""
EMPTY_JSON = b"{}"


async def test_version_check(client):
    resp = await client.get("/v2/")
    assert resp.status == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_post_then_put_monolithic(client):
    data = os.urandom(5000)
    resp = await client.post("/v2/lib/app/blobs/uploads/")
    assert resp.status == 202
    location = resp.headers["Location"]
    assert resp.headers["Range"] == "0-0"
    resp = await client.put(f"{location}?digest={sha256(data)}", data=data,
                            headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/lib/app/blobs/{sha256(data)}"
    assert resp.headers["Docker-Content-Digest"] == sha256(data)
    resp = await client.get(f"/v2/lib/app/blobs/{sha256(data)}")
    assert resp.status == 200
    assert await resp.read() == data
    assert resp.headers["Docker-Content-Digest"] == sha256(data)


@pytest.mark.parametrize("data", [EMPTY, EMPTY_JSON], ids=["zero-length", "empty-json"])
async def test_special_blobs(client, data):
    digest = await push_blob(client, "special", data)
    resp = await client.head(f"/v2/special/blobs/{digest}")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(data))
    resp = await client.get(f"/v2/special/blobs/{digest}")
    assert await resp.read() == data


async def test_chunked_upload_with_status_and_resume(client):
    data = os.urandom(3 * 100_000 + 17)
    resp = await client.post("/v2/chunky/blobs/uploads/")
    location = resp.headers["Location"]
    offset = 0
    for size in (100_000, 100_000, 100_017):
        chunk = data[offset:offset + size]
        resp = await client.patch(location, data=chunk, headers={
            "Content-Range": f"{offset}-{offset + size - 1}",
            "Content-Type": "application/octet-stream"})
        assert resp.status == 202, await resp.text()
        assert resp.headers["Range"] == f"0-{offset + size - 1}"
        location = resp.headers["Location"]
        offset += size
        status = await client.get(location)
        assert status.status == 204
        assert status.headers["Range"] == f"0-{offset - 1}"
    resp = await client.put(f"{location}?digest={sha256(data)}")
    assert resp.status == 201
    assert await (await client.get(f"/v2/chunky/blobs/{sha256(data)}")).read() == data


async def test_streamed_patch_without_content_range(client):
    data = os.urandom(70_000)
    resp = await client.post("/v2/stream/blobs/uploads/")
    location = resp.headers["Location"]
    resp = await client.patch(location, data=data[:30_000])
    assert resp.status == 202
    resp = await client.patch(resp.headers["Location"], data=data[30_000:])
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    resp = await client.put(f"{resp.headers['Location']}?digest={sha256(data)}")
    assert resp.status == 201


async def test_final_chunk_on_put(client):
    data = os.urandom(20_000)
    resp = await client.post("/v2/finalput/blobs/uploads/")
    location = resp.headers["Location"]
    await client.patch(location, data=data[:10_000], headers={"Content-Range": "0-9999"})
    resp = await client.put(f"{location}?digest={sha256(data)}", data=data[10_000:],
                            headers={"Content-Range": "10000-19999"})
    assert resp.status == 201


@pytest.mark.parametrize("content_range", ["5-9", "0-4", "20-29"],
                         ids=["overlap", "resend", "gap"])
async def test_out_of_order_chunk_is_416(client, content_range):
    resp = await client.post("/v2/order/blobs/uploads/")
    location = resp.headers["Location"]
    resp = await client.patch(location, data=b"0123456789", headers={"Content-Range": "0-9"})
    assert resp.status == 202
    resp = await client.patch(location, data=b"abcde"[: _len(content_range)],
                              headers={"Content-Range": content_range})
    assert resp.status == 416
    assert await error_code(resp) == "BLOB_UPLOAD_INVALID"
    assert resp.headers["Range"] == "0-9"
    status = await client.get(location)
    assert status.headers["Range"] == "0-9"


def _len(content_range: str) -> int:
    start, end = map(int, content_range.split("-"))
    return end - start + 1


async def test_out_of_order_final_chunk_on_put_is_416(client):
    resp = await client.post("/v2/order/blobs/uploads/")
    location = resp.headers["Location"]
    await client.patch(location, data=b"0123456789", headers={"Content-Range": "0-9"})
    resp = await client.put(f"{location}?digest={sha256(b'x' * 20)}", data=b"x" * 5,
                            headers={"Content-Range": "12-16"})
    assert resp.status == 416


async def test_cancel_upload(client):
    resp = await client.post("/v2/cancel/blobs/uploads/")
    location = resp.headers["Location"]
    resp = await client.delete(location)
    assert resp.status == 204
    resp = await client.get(location)
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UPLOAD_UNKNOWN"


async def test_sha512_upload_end_to_end(client):
    data = os.urandom(4096)
    resp = await client.post("/v2/five12/blobs/uploads/?digest-algorithm=sha512")
    assert resp.status == 202
    resp = await client.put(f"{resp.headers['Location']}?digest={sha512(data)}", data=data)
    assert resp.status == 201
    assert resp.headers["Docker-Content-Digest"] == sha512(data)
    resp = await client.get(f"/v2/five12/blobs/{sha512(data)}")
    assert await resp.read() == data
    # Single POST with a sha512 digest, and a session started as sha256 finished as sha512.
    other = os.urandom(100)
    resp = await client.post(f"/v2/five12/blobs/uploads/?digest={sha512(other)}", data=other)
    assert resp.status == 201
    third = os.urandom(300)
    resp = await client.post("/v2/five12/blobs/uploads/")
    resp = await client.put(f"{resp.headers['Location']}?digest={sha512(third)}", data=third)
    assert resp.status == 201


async def test_wrong_digest_stores_nothing(client, config):
    data = os.urandom(1000)
    wrong = sha256(b"something else")
    resp = await client.post(f"/v2/wrong/blobs/uploads/?digest={wrong}", data=data)
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"
    for digest in (wrong, sha256(data)):
        assert (await client.head(f"/v2/wrong/blobs/{digest}")).status == 404
    assert _blob_files(config) == []
    assert list((config.data_dir / "uploads").iterdir()) == []


async def test_a_closing_put_that_fails_its_digest_changes_nothing(client, config):
    """POST, then PUT ?digest= with the whole body and a wrong digest: 400, and the session
    is as the POST left it (empty), so the client can send the right bytes again."""
    head = os.urandom(10)
    resp = await client.post("/v2/wrong/blobs/uploads/")
    location = resp.headers["Location"]
    data = os.urandom(1000)
    resp = await client.put(f"{location}?digest={sha256(b'other')}", data=data)
    assert resp.status == 400 and await error_code(resp) == "DIGEST_INVALID"
    resp = await client.get(location)
    assert resp.status == 204 and resp.headers["Range"] == "0-0"
    # A PUT that closes bytes sent before by PATCH keeps them when its digest is wrong.
    resp = await client.patch(location, data=head, headers={"Content-Range": "0-9"})
    assert resp.status == 202
    resp = await client.put(f"{location}?digest={sha256(b'other')}", data=data)
    assert resp.status == 400
    assert (await client.get(location)).headers["Range"] == "0-1009"
    resp = await client.put(f"{location}?digest={sha256(head + data)}")
    assert resp.status == 201
    assert _blob_files(config) and await (
        await client.get(f"/v2/wrong/blobs/{sha256(head + data)}")).read() == head + data


def _blob_files(config) -> list:
    return [p for p in (config.data_dir / "blobs").rglob("*") if p.is_file()]


async def test_blob_visible_only_in_linked_repository(client):
    digest = await push_blob(client, "owner", b"secret layer")
    assert (await client.get(f"/v2/owner/blobs/{digest}")).status == 200
    await client.post("/v2/stranger/blobs/uploads/")  # the repository exists
    resp = await client.get(f"/v2/stranger/blobs/{digest}")
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UNKNOWN"
    assert (await client.head(f"/v2/stranger/blobs/{digest}")).status == 404


async def enable_mounting(client) -> None:
    await client.server.app[METADATA].put_setting("000000000000", "BLOB_MOUNTING", "ENABLED")


async def test_mount_needs_blob_mounting_enabled(client):
    digest = await push_blob(client, "source/repo", b"shared layer bytes")
    resp = await client.post(f"/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo")
    assert resp.status == 202
    assert (await client.get(f"/v2/target/repo/blobs/{digest}")).status == 404


async def test_cross_repository_mount(client):
    await enable_mounting(client)
    digest = await push_blob(client, "source/repo", b"shared layer bytes")
    resp = await client.post(f"/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo")
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/target/repo/blobs/{digest}"
    assert resp.headers["Docker-Content-Digest"] == digest
    assert await (await client.get(f"/v2/target/repo/blobs/{digest}")).read() == b"shared layer bytes"


@pytest.mark.parametrize("source", ["source/repo", "nowhere", "NOT-VALID"])
async def test_mount_that_cannot_happen_starts_a_session(client, source):
    await enable_mounting(client)
    await push_blob(client, "source/repo", b"other bytes")
    missing = sha256(b"never uploaded")
    resp = await client.post(f"/v2/target/blobs/uploads/?mount={missing}&from={source}")
    assert resp.status == 202
    assert "/v2/target/blobs/uploads/" in resp.headers["Location"]


async def test_concurrent_identical_uploads(client):
    import asyncio

    data = os.urandom(50_000)
    results = await asyncio.gather(*[push_blob(client, "same", data) for _ in range(4)])
    assert set(results) == {sha256(data)}


# (Range header, expected status, expected inclusive (first, last) as a function of size)
RANGE_CASES = [
    ("bytes=500-1499", 206, lambda size: (500, 1499)),
    ("bytes=500-", 206, lambda size: (500, size - 1)),
    ("bytes=-500", 206, lambda size: (size - 500, size - 1)),
    ("bytes=2000-10000000", 206, lambda size: (2000, size - 1)),
    ("bytes=10000000-20000000", 416, None),
    ("bytes=500-0", 416, None),
    (None, 200, lambda size: (0, size - 1)),
]


@pytest.mark.parametrize("size", [5000, 600_000], ids=["cached", "sendfile"])
@pytest.mark.parametrize("header,status,selected", RANGE_CASES)
async def test_blob_range(client, size, header, status, selected):
    data = os.urandom(size)
    digest = await push_blob(client, "ranges", data)
    resp = await client.get(f"/v2/ranges/blobs/{digest}",
                            headers={"Range": header} if header else {})
    assert resp.status == status
    body = await resp.read()
    if status == 416:
        assert resp.headers["Content-Range"] == f"bytes */{size}"
        assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"
        return
    first, last = selected(size)
    assert body == data[first:last + 1]
    assert resp.headers["Docker-Content-Digest"] == digest
    if status == 206:
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
    else:
        assert resp.headers["Accept-Ranges"] == "bytes"


async def test_delete_blob_unlinks_from_repository_only(client):
    digest = await push_blob(client, "del/a", b"shared")
    await push_blob(client, "del/b", b"shared")
    resp = await client.delete(f"/v2/del/a/blobs/{digest}")
    assert resp.status == 202
    assert (await client.get(f"/v2/del/a/blobs/{digest}")).status == 404
    assert (await client.get(f"/v2/del/b/blobs/{digest}")).status == 200
    resp = await client.delete(f"/v2/del/a/blobs/{digest}")
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UNKNOWN"


async def test_pull_from_missing_repository(client):
    resp = await client.get("/v2/missing/manifests/latest")
    assert resp.status == 404
    assert await error_code(resp) == "NAME_UNKNOWN"
    resp = await client.get(f"/v2/missing/blobs/{sha256(b'x')}")
    assert resp.status == 404


async def test_manifest_round_trip_exact_bytes(client):
    digest, manifest = await push_image(client, "round/trip", "v1")
    for ref in ("v1", digest):
        resp = await client.get(f"/v2/round/trip/manifests/{ref}")
        assert resp.status == 200
        assert await resp.read() == manifest
        assert resp.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
        assert resp.headers["Docker-Content-Digest"] == digest
        head = await client.head(f"/v2/round/trip/manifests/{ref}")
        assert head.status == 200
        assert head.headers["Content-Length"] == str(len(manifest))
        assert head.headers["Docker-Content-Digest"] == digest
    assert hashlib.sha256(manifest).hexdigest() == digest.split(":")[1]


async def test_healthz_and_metrics(client):
    assert (await client.get("/healthz")).status == 200
    await push_blob(client, "metered", b"some bytes for the counters")
    await client.get(f"/v2/metered/blobs/{sha256(b'some bytes for the counters')}")
    text = await (await client.get("/metrics")).text()
    assert 'berth_http_requests_total{method="POST",route="upload_start",status="201"}' in text
    assert "berth_http_request_duration_seconds_bucket" in text
    assert "berth_http_bytes_received_total" in text
    assert "berth_uploads_in_progress" in text
