"""Side-by-side benchmark of Berth against CNCF Distribution 2.8 (Debian's docker-registry).

    python3 bench/run.py [--quick] [--rounds N] [--only WORKLOAD...] [--targets NAME...]
                         [--json OUT]

For every workload and round, each target is started fresh (free loopback port, empty data dir
under one work dir on one disk), set up, measured once and stopped; the order of targets
alternates between rounds. The report gives each target's median, the Berth/Distribution ratio
and the goals (issue 5's against Distribution; issue 3's and 9's between Berth variants). See
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.httpclient import HttpError  # noqa: E402
from bench.noise import NOISY_PCT, CpuNoise, wait_until_quiet  # noqa: E402
from bench.ops import file_is_cached  # noqa: E402
from bench.payload import make_blob_file, make_small_image, make_small_images  # noqa: E402
from bench.launcher import Launcher  # noqa: E402
from bench.targets import DISTRIBUTION_BINARY, REPO_ROOT, SPECS  # noqa: E402
from bench.workloads import DERIVED, WORKLOADS, Context, Settings  # noqa: E402
from bench.wrk import WrkError  # noqa: E402

MIB = 1024 * 1024
FULL = Settings(blob_size=1024 * MIB, chunk_size=16 * MIB, wrk_duration_s=10)
QUICK = Settings(blob_size=128 * MIB, chunk_size=16 * MIB, wrk_duration_s=3)
DEFAULT_TARGETS = ["berth", "distribution", "null", "disk"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choices = [*WORKLOADS, *DERIVED]
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 128 MiB blob, 3 s wrk runs, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default 3, quick 1)")
    parser.add_argument("--only", nargs="+", choices=choices, metavar="WORKLOAD",
                        help=f"run only these workloads: {', '.join(choices)}")
    parser.add_argument("--targets", nargs="+", choices=list(SPECS), default=DEFAULT_TARGETS,
                        metavar="TARGET",
                        help=f"targets to run (default: {' '.join(DEFAULT_TARGETS)}); "
                             "'null' is a discard-everything sink showing the client's ceiling, "
                             "'disk' a plain write + fsync of the blob (no server)")
    parser.add_argument("--json", metavar="OUT", help="write machine-readable results here")
    parser.add_argument("--tmpdir", default=tempfile.gettempdir(),
                        help="where the work dir (blob file, data dirs) goes; one disk")
    parser.add_argument("--blob-mib", type=int, help="override the big blob's size in MiB")
    parser.add_argument("--wrk-seconds", type=int, help="override the wrk duration")
    parser.add_argument("--berth-src", default=REPO_ROOT, metavar="DIR",
                        help="run Berth from this source tree (default: this checkout), e.g. "
                             "a `git archive` export of a commit while the work tree changes")
    parser.add_argument("--base-src", metavar="DIR",
                        help="the baseline Berth source tree for the berth-base target, e.g. "
                             "`git -C REPO archive COMMIT | tar -x -C DIR`")
    parser.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS",
                        help="before each sample, wait up to this long for the machine to be "
                             "idle (default 60; 0 disables)")
    parser.add_argument("--rgw-wait", type=float, default=60.0, metavar="SECONDS",
                        help="an S3 target needs the machine's one Ceph RGW cluster: wait up "
                             "to this long for a test session holding it (default 60)")
    parser.add_argument("--noisy-retries", type=int, default=2, metavar="N",
                        help="re-run a sample up to N times when other processes used more "
                             f"than {NOISY_PCT:g}%% CPU during it (default 2)")
    args = parser.parse_args(argv)
    if args.rounds is not None and not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    if any(SPECS[t].source == "base" for t in args.targets) and not args.base_src:
        parser.error("target berth-base needs --base-src DIR")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else FULL
    overrides = {}
    if args.blob_mib:
        overrides["blob_size"] = args.blob_mib * MIB
    if args.wrk_seconds:
        overrides["wrk_duration_s"] = args.wrk_seconds
    return Settings(**{**asdict(base), **overrides})


def memstore_for(settings: Settings) -> int:
    """RGW's memstore cap: one target start holds at most the blob twice (the upload, and
    its copy under the blob's key if RGW copies the data) and each bucket is emptied and
    garbage-collected at stop, so four blobs and 1 GiB of headroom are plenty."""
    return max(2 << 30, 4 * settings.blob_size + (1 << 30))


def selected_workloads(only: list[str] | None) -> list[str]:
    if not only:
        return list(WORKLOADS)
    wanted = {DERIVED.get(name, name) for name in only}
    return [name for name in WORKLOADS if name in wanted]


def _commit_file(src: str) -> str:
    """The commit an exported tree was made from, if the exporter wrote it to COMMIT."""
    try:
        with open(os.path.join(src, "COMMIT")) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _commit_of(src: str, out) -> str:
    # An exported tree is not a git work tree: rev-parse would name the enclosing repository's
    # HEAD (or fail), so a COMMIT file written by the exporter wins.
    return _commit_file(src) or out(["git", "-C", src, "rev-parse", "--short", "HEAD"])


def describe_machine(launcher: Launcher, targets: list[str]) -> dict:
    def out(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                  cwd=REPO_ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    info = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "distribution": out([DISTRIBUTION_BINARY, "--version"]),
        "wrk": out(["wrk", "--version"]).splitlines()[0] if shutil.which("wrk") else "",
        "berth_src": launcher.berth_src,
        "berth_commit": _commit_of(launcher.berth_src, out),
    }
    if launcher.base_src:
        info["base_src"] = launcher.base_src
        info["base_commit"] = _commit_of(launcher.base_src, out)
    if launcher.postgres is not None:
        info["postgres"] = launcher.postgres.describe()
    if launcher.rgw is not None:
        info["rgw"] = launcher.rgw.describe()
    if any(SPECS[t].nodes for t in targets):
        from bench.nginx import NGINX_BINARY

        try:  # nginx -v prints to stderr
            info["nginx"] = subprocess.run([NGINX_BINARY, "-v"], capture_output=True,
                                           text=True, timeout=30).stderr.strip()
        except (OSError, subprocess.SubprocessError):
            info["nginx"] = ""
    info["target_env"] = {t: launcher.target_env(SPECS[t]) for t in targets}
    return info


_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b.*")


def _headline(message: str) -> str:
    """The first line of a start failure plus the last exception line of the log tail it
    carries: enough for the progress line and the report (the whole tail is in the JSON)."""
    first, *rest = message.splitlines() or [""]
    raised = [line.strip() for line in rest if _EXCEPTION_LINE.match(line.strip())]
    return f"{first.rstrip(':')} ({raised[-1]})" if raised else first


def run_one(launcher: Launcher, workload_name: str, target_name: str, ctx: Context) -> dict:
    workload, spec = WORKLOADS[workload_name], SPECS[target_name]
    workers = None
    if spec.kind == "berth":
        workers = spec.workers if spec.workers is not None else workload.workers
    try:
        target = launcher.start(spec, workers=workers)
    except RuntimeError as exc:
        # Nothing was measured; zero CPU keeps the report's columns (and no retry is due).
        return {"value": None, "error": f"start failed: {_headline(str(exc))}",
                "log_tail": str(exc),
                "cpu": {"other_cpu_pct": 0.0, "target_cpu_pct": 0.0, "kernel_cpu_pct": 0.0,
                        "steal_pct": 0.0}}
    noise = CpuNoise(target.cpu_pids)
    noise.start()
    try:
        sample = workload.measure(target, ctx)
    except (HttpError, WrkError, OSError, RuntimeError, subprocess.SubprocessError) as exc:
        sample = {"value": None, "error": f"{type(exc).__name__}: {exc}",
                  "log_tail": target.log_tail()}
    try:
        sample["cpu"] = noise.stop()
    finally:
        launcher.stop(target)
    return sample


def run_sample(launcher: Launcher, workload_name: str, target_name: str, ctx: Context,
               args: argparse.Namespace) -> dict:
    """One sample, re-run (bounded) while other processes were busy during it; the noisy
    attempts are kept in the sample's ``noisy_attempts``."""
    discarded: list[dict] = []
    for _ in range(1 + max(args.noisy_retries, 0)):
        waited = wait_until_quiet(max_wait_s=args.quiet_wait) if args.quiet_wait > 0 else 0.0
        sample = run_one(launcher, workload_name, target_name, ctx)
        sample["quiet_wait_s"] = waited
        if sample["cpu"]["other_cpu_pct"] <= NOISY_PCT or sample.get("value") is None:
            break
        discarded.append(sample)
    else:
        discarded.pop()
    sample["noisy_attempts"] = discarded
    return sample


def _progress(name: str, target: str, round_no: int, rounds: int, sample: dict,
              seconds: float) -> str:
    shown = (f"{sample['value']:.1f} {WORKLOADS[name].unit}"
             if sample.get("value") is not None else f"ERROR {sample['error']}")
    cpu = sample["cpu"]
    flag = "  NOISY" if cpu["other_cpu_pct"] > NOISY_PCT else ""
    return (f"  [{name} round {round_no}/{rounds}] {target}: {shown} ({seconds:.1f}s, "
            f"target cpu {cpu['target_cpu_pct']}%, other cpu {cpu['other_cpu_pct']}%){flag}")


def run_workloads(launcher: Launcher, ctx: Context, workloads: list[str], targets: list[str],
                  rounds: int, args: argparse.Namespace) -> report.Samples:
    """Every workload, ``rounds`` times, each target once per round in alternating order."""
    samples: report.Samples = {}
    for name in workloads:
        runnable = [t for t in targets if SPECS[t].runs(name, WORKLOADS[name].kinds)]
        samples[name] = {t: [] for t in runnable}
        for round_no in range(rounds):
            for target in (runnable if round_no % 2 == 0 else runnable[::-1]):
                started = time.monotonic()
                sample = run_sample(launcher, name, target, ctx, args)
                sample["round"] = round_no + 1
                samples[name][target].append(sample)
                print(_progress(name, target, round_no + 1, rounds, sample,
                                time.monotonic() - started), flush=True)
    return samples


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rounds = args.rounds or (1 if args.quick else 3)
    targets = list(dict.fromkeys(args.targets))
    workdir = tempfile.mkdtemp(prefix="berth-bench-", dir=args.tmpdir)
    launcher = Launcher(workdir=workdir, berth_src=os.path.abspath(args.berth_src),
                        base_src=os.path.abspath(args.base_src) if args.base_src else None)
    try:
        for src in {launcher.source(SPECS[t]) for t in targets if SPECS[t].kind == "berth"}:
            if not launcher.berth_help(src):
                print(f"berth in {src} is not runnable (`python3 -m registry serve --help` "
                      "failed); use --targets distribution", file=sys.stderr)
                return 2
        if any(SPECS[t].metadata == "postgresql" for t in targets):
            print("starting the PostgreSQL cluster", flush=True)
            try:
                launcher.start_postgres()
            except RuntimeError as exc:
                print(f"warning: {exc}; its targets will report ERROR", file=sys.stderr)
        if any(SPECS[t].storage == "s3" for t in targets):
            print("starting the Ceph RGW cluster", flush=True)
            try:
                launcher.start_rgw(memstore_bytes=memstore_for(settings),
                                   lock_timeout=args.rgw_wait)
            except RuntimeError as exc:
                print(f"warning: {exc}; its targets will report ERROR", file=sys.stderr)
        machine = describe_machine(launcher, targets)
        print(f"machine: {json.dumps(machine)}")
        print(f"settings: {json.dumps(asdict(settings))}, rounds: {rounds}")
        print(f"work dir: {workdir}; generating {settings.blob_size // MIB} MiB random blob",
              flush=True)
        blob = make_blob_file(workdir, settings.blob_size)
        file_is_cached(blob.path)
        launcher.serve_file = blob.path
        ctx = Context(settings=settings, blob=blob,
                      image=make_small_image(settings.small_blob_size),
                      images=make_small_images(settings.push_images, settings.small_blob_size))
        samples = run_workloads(launcher, ctx, selected_workloads(args.only), targets, rounds,
                                args)
        if launcher.rgw is not None:
            machine["rgw"] = launcher.rgw.describe()  # now with the OSD's peak memory
        summary = report.summarize(samples, targets)
        print(report.render_details(samples, targets))
        print("\nratio = median(berth) / median(distribution); rss = max peak over pushes, MiB\n")
        print(report.render_table(summary, targets))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"machine": machine, "settings": asdict(settings), "rounds": rounds,
                           "targets": targets, "samples": samples, "summary": summary},
                          handle, indent=2)
            print(f"\nwrote {args.json}")
        results = {row["result"] for row in summary["rows"]}
        return 1 if results & {"FAIL", "ERROR"} else 0
    finally:
        launcher.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; targets stopped and work dir removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
