"""Comparison 1 of bench/bench_scan.py: push-to-findings of the bookworm image in Berth
against a bare ``trivy image`` run on the same image with the same DB.

One round = one fresh server (cold Trivy cache) and one fresh bare cache dir; the side that
runs first alternates between rounds.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING

from bench.scan_images import Bookworm
from bench.scan_proc import CpuWindow
from bench.scan_server import SCAN_TIMEOUT, ScanBerth
from tests.scanner.conftest import bare_trivy, report_keys

if TYPE_CHECKING:
    from bench.bench_scan import Bench


def findings_round(bench: Bench, inputs: Bookworm, rnd: int) -> dict[str, dict]:
    server = bench.server(f"findings-{rnd}", inputs.db_layer)
    try:
        order = ("berth", "bare") if rnd % 2 == 0 else ("bare", "berth")
        samples = {}
        for side in order:
            os.sync()  # the previous round's pushes are not written out during this one
            quiet = bench.quiet()
            sample = berth_findings(bench, server, inputs, rnd) if side == "berth" \
                else bare_findings(bench, inputs, rnd)
            samples[side] = {"round": rnd, "order": order.index(side), "quiet_pct": quiet,
                             **sample}
        return samples
    finally:
        bench.stop(server)


def berth_findings(bench: Bench, server: ScanBerth, inputs: Bookworm, rnd: int) -> dict:
    repo = f"bench/bookworm-{rnd}"
    server.create_repository(repo, scan_on_push=True)
    wall_offset = time.time() - time.monotonic()
    with CpuWindow(server.pid) as window:
        push = server.oci.push(repo, "latest", inputs.image)
        seen, status, counts, polls = server.wait_scan(repo, inputs.image.digest,
                                                       poll=bench.args.poll, timeout=SCAN_TIMEOUT)
    sample = {"seconds": seen - push.started, "push_seconds": push.seconds,
              "scan_seconds": seen - push.ended, "status": status,
              "findings": sum(counts.values()), "polls": polls, "cpu": window.shares.as_dict()}
    logged = server.trivy_log_seconds(inputs.image.digest)
    if logged is not None:
        # The server's log time has millisecond resolution and the same wall clock.
        trivy_end = logged[0] - wall_offset
        sample.update(trivy_seconds=logged[1],
                      to_trivy_seconds=trivy_end - logged[1] - push.ended,
                      after_trivy_seconds=seen - trivy_end)
    if status != "COMPLETE":
        sample["error"] = f"scan ended {status}"
    return sample


def bare_findings(bench: Bench, inputs: Bookworm, rnd: int) -> dict:
    work = bench.work / f"bare-{rnd}"
    work.mkdir()
    try:
        with CpuWindow(None) as window:
            report, seconds = bare_trivy(bench.trivy, inputs.layout, inputs.db_layer, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": seconds, "findings": len(report_keys(report)),
            "cpu": window.shares.as_dict()}
