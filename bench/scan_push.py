"""Comparison 2 of bench/bench_scan.py: push latency of a big image on an idle server and
while a queue of scans runs.

One round = one fresh server; idle and loaded pushes alternate which comes first. Every timed
push is a new image to that server (``Bench.big_image``), into a repository without scan on
push, after a random pause (``JITTER``). Loaded pushes start once the loader images are
pushed and a Trivy process runs, and stop when the queue has drained (then fewer samples are
taken). A Trivy process that Berth has paused (SIGSTOP) still counts as a scan in progress;
the samples say how often it was stopped.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from bench.scan_images import PushImage
from bench.scan_proc import CpuWindow, trivy_children
from bench.scan_report import noisy
from bench.scan_server import SCAN_TIMEOUT, BenchError, ScanBerth

if TYPE_CHECKING:
    from bench.bench_scan import Bench

# A loaded push counts only if a Trivy process was seen at this share of the samples.
BUSY_TRIVY_PCT = 50.0
# Each timed push starts after a random pause of up to this many seconds, about one loader
# scan: a scan alternates CPU-heavy (gunzip, analysis) and light phases (start-up, storing
# results), and a fixed cadence can lock onto one phase and make "loaded" look lighter or
# heavier than it is. (A `sync` before each push did exactly that: it returned right after
# each scan's writes.)
JITTER = 0.7


def push_round(bench: Bench, db: bytes, loaders: list[PushImage], rnd: int) -> list[dict]:
    server = bench.server(f"push-{rnd}", db)
    count = iter(range(1000))  # every timed push of a server is a new image
    rng = random.Random(rnd)

    def push_new(repo: str) -> dict:
        server.create_repository(repo, scan_on_push=False)
        image = bench.big_image(next(count))
        time.sleep(rng.uniform(0.0, JITTER))
        return timed_push(server, repo, image)

    try:
        order = ("idle", "loaded") if rnd % 2 == 0 else ("loaded", "idle")
        samples = []
        for position, condition in enumerate(order):
            measure = idle_pushes if condition == "idle" else loaded_pushes
            for index, sample in enumerate(measure(bench, server, loaders, push_new, rnd)):
                samples.append({"round": rnd, "condition": condition, "order": position,
                                "index": index, **sample})
        return samples
    finally:
        bench.stop(server)


def timed_push(server: ScanBerth, repo: str, image: PushImage) -> dict:
    with CpuWindow(server.pid) as window:
        push = server.oci.push(repo, "latest", image)
    return {"seconds": push.seconds, "mb_per_s": push.bytes / push.seconds / 1e6,
            "cpu": window.shares.as_dict()}


def retaking_noisy(bench: Bench, take) -> list[dict]:
    """``--pushes`` samples from ``take()``; a noisy one is kept but marked ``retaken`` and
    taken again, at most ``--noisy-retries`` times. ``take()`` returning None ends early."""
    samples, retries = [], bench.args.noisy_retries
    while sum(not s.get("retaken") for s in samples) < bench.args.pushes:
        sample = take()
        if sample is None:
            break
        if noisy(sample) and retries > 0:
            sample["retaken"] = True
            retries -= 1
        samples.append(sample)
    return samples


def idle_pushes(bench: Bench, server: ScanBerth, loaders, push_new, rnd: int) -> list[dict]:
    deadline = time.monotonic() + SCAN_TIMEOUT
    while trivy_children(server.pid) or server.unfinished_scans(f"bench/load-{rnd}"):
        if time.monotonic() > deadline:
            raise BenchError("the scan queue did not drain before the idle pushes")
        time.sleep(0.2)
    serial = iter(range(1000))

    def take() -> dict:
        quiet = bench.quiet()
        return {"quiet_pct": quiet, "unfinished_before": 0, "unfinished_after": 0,
                **push_new(f"bench/idle-{rnd}-{next(serial)}")}

    return retaking_noisy(bench, take)


def loaded_pushes(bench: Bench, server: ScanBerth, loaders, push_new, rnd: int) -> list[dict]:
    load = f"bench/load-{rnd}"
    server.create_repository(load, scan_on_push=True)
    quiet = bench.quiet()
    started = time.monotonic()
    for index, image in enumerate(loaders):
        server.oci.push(load, f"img-{index:02d}", image)
    loaders_pushed = time.monotonic()
    deadline = time.monotonic() + 30
    while not trivy_children(server.pid):
        if time.monotonic() > deadline:
            raise BenchError("no Trivy process started after the loader pushes")
        time.sleep(0.01)
    serial = iter(range(1000))

    def take() -> dict | None:
        before = server.unfinished_scans(load)
        if before == 0:
            return None  # the queue drained: no loaded sample can be taken any more
        sample = push_new(f"bench/loaded-{rnd}-{next(serial)}")
        after = server.unfinished_scans(load)
        busy = after > 0 and sample["cpu"]["trivy_running_pct"] >= BUSY_TRIVY_PCT
        return {"quiet_pct": quiet, "unfinished_before": before, "unfinished_after": after,
                "busy": busy, **sample}

    samples = retaking_noisy(bench, take)
    drained = wait_drained(server, load, loaders)
    for sample in samples:
        sample.update(loader_push_seconds=loaders_pushed - started,
                      drain_seconds=drained - loaders_pushed)
    return samples


def wait_drained(server: ScanBerth, repo: str, loaders: list[PushImage]) -> float:
    """Wait until every loader's scan is over; all must be COMPLETE with findings."""
    for image in loaders:
        _, status, counts, _ = server.wait_scan(repo, image.digest, poll=0.1,
                                                timeout=SCAN_TIMEOUT)
        if status != "COMPLETE" or not counts:
            raise BenchError(f"loader scan ended {status} with {counts}")
    return time.monotonic()
