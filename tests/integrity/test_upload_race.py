"""Issue 8: a PATCH racing the closing PUT must never change published bytes, with one
worker process or two, and one account must not be able to poison a digest another pushes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integrity.race import check_outcome, corrupt_blob_files, race, sha256
from tests.support.server import BerthServer

ITERATIONS = 100
AUTH_OFF = {"BERTH_AUTH__ENABLED": "false"}


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def server(request, tmp_path):
    server = BerthServer(tmp_path / "berth", workers=request.param, env=AUTH_OFF)
    server.start()
    yield server
    server.stop()


def test_patch_racing_the_closing_put_never_changes_published_bytes(server):
    with ThreadPoolExecutor(2) as pool:
        results = [race(server.url, f"race/r{number % 5}", pool=pool)
                   for number in range(ITERATIONS)]
    assert corrupt_blob_files(server) == []
    published = [r for r in results if r.put.status_code == 201]
    assert published  # the closing PUT won at least sometimes
    for result in results:
        check_outcome(result)
    for result in published:
        assert server.blob_path(result.digest).read_bytes() == result.good


def test_one_account_cannot_poison_a_digest_another_account_pushes(tmp_path):
    server = BerthServer(tmp_path / "berth", workers=2, env=AUTH_OFF)
    with server:
        attacker = "111111111111.localhost"
        attempts = []
        with ThreadPoolExecutor(2) as pool:
            for number in range(40):
                attempts.append(race(server.url, "shared/base", host=attacker, pool=pool))
        victim = requests.Session()
        for attempt in attempts:
            created = victim.post(f"{server.url}/v2/team/app/blobs/uploads/?digest="
                                  f"{attempt.digest}", data=attempt.good, timeout=30)
            assert created.status_code == 201, created.text
            pulled = victim.get(f"{server.url}/v2/team/app/blobs/{attempt.digest}", timeout=30)
            assert pulled.status_code == 200
            assert sha256(pulled.content) == attempt.digest
        assert corrupt_blob_files(server) == []
