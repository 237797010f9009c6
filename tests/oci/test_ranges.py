"""Blob GET answers every Range header alike, whether the blob is served from the in-process
cache (size <= limits.small_blob_max_bytes) or by sendfile from disk (issue 8, 4).

Two servers hold the same blobs; one serves them from memory, the other from disk. Each row is
sent to both, and both answers must equal the row's expectation and each other in every header
that matters.
"""

from __future__ import annotations

import os

import pytest

from registry.app import create_app
from registry.appkeys import BLOB_CACHE
from registry.config import load_config
from tests.oci.helpers import push_blob, sha256

SIZE = 1000
BLOB = os.urandom(SIZE)
EMPTY = b""
ALL = None  # the whole blob

# Range header, extra headers, expected status, expected (first, last) or None
ROWS = [
    ("no Range", None, {}, 200, ALL),
    ("first 10 bytes", "bytes=0-9", {}, 206, (0, 9)),
    ("middle", "bytes=500-599", {}, 206, (500, 599)),
    ("one byte", "bytes=999-999", {}, 206, (999, 999)),
    ("open range", "bytes=5-", {}, 206, (5, SIZE - 1)),
    ("open range from the last byte", f"bytes={SIZE - 1}-", {}, 206, (SIZE - 1, SIZE - 1)),
    ("suffix range", "bytes=-100", {}, 206, (SIZE - 100, SIZE - 1)),
    ("suffix longer than the blob", "bytes=-5000", {}, 206, (0, SIZE - 1)),
    ("end clipped", "bytes=900-5000", {}, 206, (900, SIZE - 1)),
    ("whole blob as a range", f"bytes=0-{SIZE - 1}", {}, 206, (0, SIZE - 1)),
    ("upper-case unit", "BYTES=0-9", {}, 206, (0, 9)),
    ("huge last position", "bytes=0-" + "9" * 5000, {}, 206, (0, SIZE - 1)),
    ("first byte past the end", f"bytes={SIZE}-", {}, 416, None),
    ("first byte far past the end", "bytes=5000-10000", {}, 416, None),
    ("huge first position", "bytes=" + "9" * 5000 + "-", {}, 416, None),
    ("zero-length suffix", "bytes=-0", {}, 416, None),
    ("last before first", "bytes=500-0", {}, 416, None),
    ("malformed numbers", "bytes=a-b", {}, 416, None),
    ("no positions", "bytes=-", {}, 416, None),
    ("empty range set", "bytes=", {}, 416, None),
    ("non-ASCII digits", "bytes=\u0661-\u0662", {}, 416, None),
    ("multiple ranges are ignored", "bytes=0-9,20-29", {}, 200, ALL),
    ("overlapping ranges are ignored", "bytes=0-9,5-", {}, 200, ALL),
    ("unknown unit is ignored", "items=0-9", {}, 200, ALL),
    ("no unit at all is ignored", "0-9", {}, 200, ALL),
    ("If-Range with the ETag", "bytes=0-9", {"If-Range": "ETAG"}, 206, (0, 9)),
    ("If-Range with another ETag", "bytes=0-9", {"If-Range": '"sha256:other"'}, 200, ALL),
    ("If-Range with a date", "bytes=0-9", {"If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}, 200,
     ALL),
    ("If-Range without Range", None, {"If-Range": "ETAG"}, 200, ALL),
]

EMPTY_ROWS = [
    ("empty blob, no Range", None, 200),
    ("empty blob, first byte", "bytes=0-0", 200),
    ("empty blob, open range", "bytes=0-", 200),
    ("empty blob, suffix", "bytes=-10", 200),
    ("empty blob, malformed", "bytes=a-b", 416),
]


def _config(tmp_path, name: str, small_max: int):
    return load_config(environ={}, overrides={"data_dir": str(tmp_path / name),
                                              "gc.enabled": False, "auth.enabled": False,
                                              "limits.small_blob_max_bytes": small_max})


@pytest.fixture
async def servers(aiohttp_client, tmp_path):
    """(memory client, disk client, memory app, disk app), both holding BLOB and EMPTY."""
    memory_app = create_app(_config(tmp_path, "memory", 1024 * 1024))
    disk_app = create_app(_config(tmp_path, "disk", 0))
    memory, disk = await aiohttp_client(memory_app), await aiohttp_client(disk_app)
    for client in (memory, disk):
        for data in (BLOB, EMPTY):
            digest = await push_blob(client, "lib/app", data)
            resp = await client.get(f"/v2/lib/app/blobs/{digest}")  # fills the memory cache
            assert resp.status == 200 and await resp.read() == data
    return memory, disk, memory_app, disk_app


async def _get(client, digest: str, range_header: str | None, extra: dict[str, str]):
    headers = dict(extra)
    if range_header is not None:
        headers["Range"] = range_header
    if headers.get("If-Range") == "ETAG":
        headers["If-Range"] = f'"{digest}"'
    resp = await client.get(f"/v2/lib/app/blobs/{digest}", headers=headers)
    body = await resp.read()
    return {"status": resp.status, "Content-Range": resp.headers.get("Content-Range"),
            "Content-Length": resp.headers.get("Content-Length"),
            "Content-Type": resp.headers.get("Content-Type"),
            "Accept-Ranges": resp.headers.get("Accept-Ranges"),
            "Docker-Content-Digest": resp.headers.get("Docker-Content-Digest"),
            "ETag": resp.headers.get("ETag"), "body": body}


def _expected(status: int, selected: tuple[int, int] | None, data: bytes) -> dict:
    if status == 416:
        return {"status": 416, "Content-Range": f"bytes */{len(data)}"}
    first, last = selected if selected is not None else (0, len(data) - 1)
    return {"status": status, "body": data[first:last + 1],
            "Content-Length": str(last - first + 1),
            "Content-Range": None if selected is None else f"bytes {first}-{last}/{len(data)}"}


@pytest.mark.parametrize("description,range_header,extra,status,selected", ROWS,
                         ids=[row[0] for row in ROWS])
async def test_range_is_answered_alike_from_memory_and_from_disk(
        servers, description, range_header, extra, status, selected):
    memory, disk, memory_app, disk_app = servers
    digest = sha256(BLOB)
    from_memory = await _get(memory, digest, range_header, extra)
    from_disk = await _get(disk, digest, range_header, extra)
    expected = _expected(status, selected, BLOB)
    assert {k: from_memory[k] for k in expected} == expected
    assert from_disk == from_memory  # a 416 included: the same OCI error body on both paths
    # The two paths really were the two paths.
    assert memory_app[BLOB_CACHE].get(digest) == BLOB
    assert disk_app[BLOB_CACHE].get(digest) is None


@pytest.mark.parametrize("description,range_header,status", EMPTY_ROWS,
                         ids=[row[0] for row in EMPTY_ROWS])
async def test_range_on_an_empty_blob(servers, description, range_header, status):
    # Both servers serve the empty blob from memory (0 <= any limit); the rows pin the rule.
    memory, disk, _, _ = servers
    digest = sha256(EMPTY)
    from_memory = await _get(memory, digest, range_header, {})
    from_disk = await _get(disk, digest, range_header, {})
    assert from_memory == from_disk
    assert from_memory["status"] == status
    if status == 200:
        assert from_memory["body"] == b"" and from_memory["Content-Length"] == "0"
        assert from_memory["Content-Range"] is None
    else:
        assert from_memory["Content-Range"] == "bytes */0"


async def test_a_large_blob_streams_exact_slices(aiohttp_client, tmp_path):
    """A blob of several sendfile chunks: every slice is the right bytes."""
    client = await aiohttp_client(create_app(_config(tmp_path, "big", 0)))
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = await push_blob(client, "lib/big", data)
    for first, last in [(0, len(data) - 1), (1, 2 * 1024 * 1024), (len(data) - 5, len(data) - 1)]:
        resp = await client.get(f"/v2/lib/big/blobs/{digest}",
                                headers={"Range": f"bytes={first}-{last}"})
        assert resp.status == 206
        assert await resp.read() == data[first:last + 1]
    resp = await client.get(f"/v2/lib/big/blobs/{digest}")
    assert resp.status == 200 and await resp.read() == data
