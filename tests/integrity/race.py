"""The race of issue 8: a PATCH of garbage fired at the same moment as the closing PUT.

Each side has its own connection (and so, with ``--workers 2``, often its own worker
process). Whatever the interleaving, the bytes published under the digest must be the
verified ones.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from tests.support.server import RegistryProcess


@dataclass(frozen=True)
class RaceResult:
    digest: str
    good: bytes
    put: requests.Response
    patch: requests.Response


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def race(url: str, repo: str, *, host: str | None = None, size: int = 64 * 1024,
         pool: ThreadPoolExecutor) -> RaceResult:
    headers = {"Host": host} if host else {}
    good = os.urandom(size)
    digest = sha256(good)
    closer, intruder = requests.Session(), requests.Session()
    try:
        started = closer.post(f"{url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=30)
        assert started.status_code == 202, started.text
        location = url + started.headers["Location"]
        patched = closer.patch(location, data=good, headers=headers, timeout=30)
        assert patched.status_code == 202, patched.text
        intruder.get(f"{url}/v2/", headers=headers, timeout=30)  # open its connection now
        barrier = threading.Barrier(2)

        def close():
            barrier.wait(timeout=30)
            return closer.put(f"{location}?digest={digest}", headers=headers, timeout=30)

        def intrude():
            barrier.wait(timeout=30)
            return intruder.patch(location, data=b"garbage!" * (size // 8), headers=headers,
                                  timeout=30)

        put, patch = pool.submit(close), pool.submit(intrude)
        return RaceResult(digest, good, put.result(), patch.result())
    finally:
        closer.close()
        intruder.close()


def check_outcome(result: RaceResult) -> None:
    """The closing PUT either published the good bytes and the PATCH found no session, or
    the PATCH got there first and the PUT saw bytes that no longer match."""
    if result.put.status_code == 201:
        assert result.patch.status_code == 404, result.patch.text
        assert result.patch.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    else:
        assert result.put.status_code == 400, result.put.text
        assert result.put.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert result.patch.status_code == 202, result.patch.text


def corrupt_blob_files(server: RegistryProcess) -> list[str]:
    """Every file under blobs/ whose bytes do not hash to its name."""
    bad = []
    for stored in server.stored_blobs():
        algorithm, _, expected = (stored.digest or "?:?").partition(":")
        data = stored.path.read_bytes()
        if stored.digest is None or hashlib.new(algorithm, data).hexdigest() != expected:
            bad.append(str(stored.path))
    return bad
