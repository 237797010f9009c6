"""The periodic scrub: throttled, low priority, and it repairs like `berth fsck --repair`."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
import requests

from registry.appkeys import BLOB_CACHE, BLOBS, METADATA, METRICS
from registry.integrity.scrub import ScrubStopped, Throttle, lower_priority, scrub_pass
from tests.integrity.conftest import AUTH_OFF, metric
from tests.oci.helpers import push_blob
from tests.support.images import Image, random_layer
from tests.support.oci_client import OciClient
from tests.support.server import BerthServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_throttle_holds_the_rate():
    clock = FakeClock()
    throttle = Throttle(1000, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        throttle.consume(500)
    assert clock.now - 100.0 == pytest.approx(3.0)


def test_throttle_spends_at_most_one_second_of_credit_after_a_slow_stretch():
    clock = FakeClock()
    throttle = Throttle(1000, clock=clock, sleep=clock.sleep)
    throttle.consume(1000)
    clock.now += 10  # the reads were slow (busy disk): no 10 s burst afterwards
    clock.slept.clear()
    for _ in range(5):
        throttle.consume(1000)
    assert sum(clock.slept) == pytest.approx(4.0)


def test_throttle_stops_when_asked():
    stop = threading.Event()
    throttle = Throttle(1000, stop=stop)
    stop.set()
    with pytest.raises(ScrubStopped):
        throttle.consume(1)


def test_scrub_thread_lowers_only_its_own_priority():
    seen = {}

    def scrub_thread() -> None:
        lower_priority()
        seen["scrub"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=scrub_thread)
    worker.start()
    worker.join()
    assert seen["scrub"] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


async def test_scrub_pass_quarantines_counts_logs_and_evicts(make_client, app_config, caplog):
    client = await make_client()
    good = os.urandom(300 * 1024)
    digest = await push_blob(client, "lib/app", good)
    other = await push_blob(client, "lib/app", b"fine")
    await client.get(f"/v2/lib/app/blobs/{other}")  # now cached
    path = app_config.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.write_bytes(good[:-1] + b"\0")
    evicted = []
    app = client.app
    with caplog.at_level(logging.INFO, logger="registry.integrity.scrub"):
        report = scrub_pass(app[METADATA], app[BLOBS], rate=1 << 30, metrics=app[METRICS],
                            evict=evicted.append)
    assert report.corrupt == report.quarantined == [digest] and evicted == [digest]
    assert report.checked == 2 and report.bytes == len(good) + 4
    assert metric(client, "berth_blob_corruptions_found_total", source="scrub") == 1
    assert metric(client, "berth_scrub_bytes_total") == len(good) + 4
    assert metric(client, "berth_scrub_last_completed_timestamp_seconds") > 0
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == "corrupt blob quarantined"
    assert error.digest == digest and error.repositories == ["000000000000/lib/app"]
    assert (await client.head(f"/v2/lib/app/blobs/{digest}")).status == 404
    assert app[BLOB_CACHE].get(other) == b"fine"
    assert scrub_pass(app[METADATA], app[BLOBS], rate=1 << 30).corrupt == []


def test_scrub_in_the_server_repairs_and_reports(tmp_path):
    env = {**AUTH_OFF, "BERTH_STORAGE__SCRUB_INTERVAL_SECONDS": "1"}
    with BerthServer(tmp_path / "berth", workers=2, env=env) as server:
        image = Image.build([random_layer("scrubbed", 512 * 1024)])
        OciClient(server.url).push_image("lib/app", "v1", image)
        path = server.blob_path(image.layers[0].digest)
        path.write_bytes(b"rotten" + path.read_bytes()[6:])
        deadline = time.monotonic() + 60
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not path.exists(), server.log_tail()
        quarantined = list((server.data_dir / "quarantine" / "sha256").iterdir())
        assert [p.name.split(".")[0] for p in quarantined] == [image.layers[0].digest[7:]]
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        assert 'berth_blob_corruptions_found_total{source="scrub"} 1.0' in text
        # The error is logged just after the counter moves: on a busy machine its line can
        # reach the log file a moment after the metrics answer.
        while "corrupt blob quarantined" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "corrupt blob quarantined" in server.log()
        head = requests.head(f"{server.url}/v2/lib/app/blobs/{image.layers[0].digest}",
                             timeout=10)
        assert head.status_code == 404
