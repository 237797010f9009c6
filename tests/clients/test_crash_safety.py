"""SIGKILL in the middle of a 200 MiB upload: nothing partial becomes visible, and the upload
can be resumed (or restarted) and finished after the server comes back on the same data dir.

Pins DESIGN.md invariants 1 and 2: a blob is visible only once complete and verified; a crash
leaves no corrupt content visible and loses no acknowledged data.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.support.images import random_bytes
from tests.support.oci_client import (
    OciClient,
    Upload,
    expect,
    parse_range,
    send_partial,
    with_query,
)

pytestmark = [pytest.mark.clients, pytest.mark.slow]

MiB = 1 << 20
SIZE = 200 * MiB
CHUNK = 16 * MiB
ACKED_BEFORE_CRASH = 96 * MiB  # six chunks acknowledged, the seventh in flight when killed


@pytest.fixture(scope="module")
def payload() -> tuple[bytes, str]:
    data = random_bytes("berth-crash-payload", SIZE)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def pieces(data: bytes, size: int = MiB):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def kill_mid_request(server, pause: float = 0.3):
    """on_stop callback: give the server time to consume what was sent, then SIGKILL it."""

    def stop() -> None:
        time.sleep(pause)
        server.kill9()

    return stop


def assert_blob_store_clean(server, *, absent: str) -> None:
    """Every file under the blob store sits at a complete blob's path and holds exactly that
    blob; the interrupted digest has no file at all."""
    assert not server.blob_path(absent).exists(), f"{absent} is in the blob store"
    for stored in server.stored_blobs():
        assert stored.digest is not None, f"stray file in the blob store: {stored.path}"
        assert stored.digest != absent, f"interrupted blob stored at {stored.path}"
        actual = "sha256:" + hashlib.sha256(stored.path.read_bytes()).hexdigest()
        assert actual == stored.digest, f"{stored.path} holds {actual}"


def assert_invisible(server, client: OciClient, repo: str, digest: str) -> None:
    head = client.head_blob(repo, digest)
    assert head.status_code == 404, f"HEAD {repo}@{digest} after the crash: {head.status_code}"
    assert client.get_blob(repo, digest).status_code == 404
    assert_blob_store_clean(server, absent=digest)


def assert_complete(server, client: OciClient, repo: str, digest: str) -> None:
    head = expect(client.head_blob(repo, digest), 200)
    assert head.headers["Content-Length"] == str(SIZE)
    assert head.headers["Docker-Content-Digest"] == digest
    assert client.blob_sha256(repo, digest) == (digest, SIZE)
    assert server.blob_path(digest).stat().st_size == SIZE
    assert_blob_store_clean(server, absent="sha256:" + "0" * 64)


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_chunked_upload_killed_mid_patch_resumes(fresh_berth, payload, workers):
    data, digest = payload
    server = fresh_berth(workers=workers)
    client = OciClient(server.url)
    repo = "crash/chunked"

    upload = client.start_upload(repo)
    while upload.offset < ACKED_BEFORE_CRASH:
        expect(client.patch(upload, data[upload.offset : upload.offset + CHUNK]), 202)
    acked = upload.offset

    in_flight = data[acked : acked + CHUNK]
    sent = send_partial(
        upload.location,
        "PATCH",
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{acked}-{acked + CHUNK - 1}",
            "Content-Length": str(CHUNK),
        },
        body=pieces(in_flight),
        stop_after=CHUNK // 2,
        on_stop=kill_mid_request(server),
    )
    assert sent == CHUNK // 2

    server.restart()
    assert_invisible(server, client, repo, digest)

    status = client.upload_status(upload)
    if status.status_code == 204:
        held = parse_range(status.headers.get("Range"))
        # Acknowledged chunks survive; the interrupted one may be kept only as far as it came.
        assert acked <= held <= acked + sent, f"Range {status.headers['Range']}, acked {acked}"
        upload = Upload(location=client.location_of(status), offset=held)
    else:
        assert status.status_code == 404, f"GET upload after restart: {status.status_code}"
        assert status.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        upload = client.start_upload(repo)

    while upload.offset < SIZE:
        expect(client.patch(upload, data[upload.offset : upload.offset + CHUNK]), 202)
    finished = expect(client.finish_upload(upload, digest), 201)
    assert finished.headers["Docker-Content-Digest"] == digest
    assert_complete(server, client, repo, digest)


@pytest.mark.parametrize("method", ["PUT", "POST"], ids=["post-then-put", "single-post"])
def test_monolithic_upload_killed_mid_body_leaves_nothing(fresh_berth, payload, method):
    data, digest = payload
    server = fresh_berth()
    client = OciClient(server.url)
    repo = "crash/monolithic"

    if method == "PUT":
        url = with_query(client.start_upload(repo).location, digest=digest)
    else:
        url = with_query(client.url(f"/v2/{repo}/blobs/uploads/"), digest=digest)
    send_partial(
        url,
        method,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(SIZE)},
        body=pieces(data),
        stop_after=SIZE // 2,
        on_stop=kill_mid_request(server),
    )

    server.restart()
    assert_invisible(server, client, repo, digest)

    # The interrupted attempt does not get in the way of a clean one.
    assert client.push_blob(repo, data) == digest
    assert_complete(server, client, repo, digest)
