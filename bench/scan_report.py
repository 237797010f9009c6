"""Medians, ratios and PASS/FAIL for bench/bench_scan.py, as a text table and as JSON.

A ratio is median(samples of one side) / median(samples of the other), both over the same
rounds of the same run. Samples with an error are left out and counted; a comparison with
no valid sample on a side is ERROR. ``noisy`` counts samples during which unrelated load
(bench/scan_proc.py) exceeded ``NOISY_PCT`` of the machine's CPU or wrote more than
``NOISY_WRITE_MB`` to storage.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path

NOISY_PCT = 15.0
NOISY_WRITE_MB = 16.0
FINDINGS_TARGET = 1.5
PUSH_TARGET = 1.1


def _median(samples: list[dict], key: str) -> float | None:
    values = [s[key] for s in samples if s.get(key) is not None]
    return statistics.median(values) if values else None


def _cpu_median(samples: list[dict], key: str) -> float | None:
    values = [s["cpu"][key] for s in samples if "cpu" in s]
    return statistics.median(values) if values else None


def noisy(sample: dict) -> bool:
    """Unrelated load during the sample: CPU, or writes that compete for the disk."""
    cpu = sample.get("cpu")
    return cpu is not None and (cpu["other_pct"] > NOISY_PCT
                                or cpu["other_write_mb"] > NOISY_WRITE_MB)


def _noisy(samples: list[dict]) -> int:
    return sum(map(noisy, samples))


def _row(name: str, num: list[dict], den: list[dict], target: float | None,
         key: str = "seconds") -> dict:
    """A comparison of the ``key`` medians; ``target`` None makes it an info row."""
    top, bottom = _median(num, key), _median(den, "seconds")
    row = {"name": name, "numerator": top, "denominator": bottom,
           "samples": [len(num), len(den)], "noisy": _noisy(num) + _noisy(den),
           "target": f"<= {target:g}x" if target else "(info)"}
    if top is None or bottom is None:
        return {**row, "ratio": None, "result": "ERROR" if target else "info"}
    ratio = top / bottom
    result = "info" if target is None else "PASS" if ratio <= target else "FAIL"
    return {**row, "ratio": ratio, "result": result}


def summarize(results: dict, args) -> dict:
    rows, details = [], {}
    if results["findings"]:
        berth = [r["berth"] for r in results["findings"] if "error" not in r["berth"]]
        bare = [r["bare"] for r in results["findings"]]
        row = _row("push-to-findings, Berth / bare trivy", berth, bare, FINDINGS_TARGET)
        counts = {s["findings"] for s in berth} | {s["findings"] for s in bare}
        if len(counts) != 1:
            row = {**row, "result": "ERROR", "error": f"finding counts differ: {counts}"}
        rows += [row, _row("  push part (start -> manifest 201) / bare", berth, bare, None,
                           "push_seconds"),
                 _row("  scan-only part (push end -> COMPLETE) / bare", berth, bare, None,
                      "scan_seconds")]
        details["findings"] = {
            "errors": len(results["findings"]) - len(berth), "finding_counts": sorted(counts),
            "retaken_rounds": len(results["findings_retaken"]),
            **{key: _median(berth, key) for key in (
                "push_seconds", "scan_seconds", "to_trivy_seconds", "trivy_seconds",
                "after_trivy_seconds", "polls")},
            "berth_cpu": {k: _cpu_median(berth, k) for k in (
                "machine_pct", "server_pct", "trivy_pct", "bench_pct", "kernel_pct", "other_pct")},
            "bare_cpu": {k: _cpu_median(bare, k) for k in ("machine_pct", "bench_pct")}}
    if results["push"]:
        kept = [s for s in results["push"] if not s.get("retaken")]
        idle = [s for s in kept if s["condition"] == "idle"]
        loaded_all = [s for s in kept if s["condition"] == "loaded"]
        loaded = [s for s in loaded_all if s["busy"]]
        rows.append(_row(f"push {args.push_mib} MiB, during {args.loaders} scans / idle",
                         loaded, idle, PUSH_TARGET))
        details["push"] = {
            "loaded_not_busy": len(loaded_all) - len(loaded),
            "idle_mb_per_s": _median(idle, "mb_per_s"),
            "loaded_mb_per_s": _median(loaded, "mb_per_s"),
            "unfinished_scans_after_push_min": min((s["unfinished_after"] for s in loaded),
                                                   default=None),
            "trivy_running_pct_min": min((s["cpu"]["trivy_running_pct"] for s in loaded),
                                         default=None),
            "trivy_stopped_pct_median": _cpu_median(loaded, "trivy_stopped_pct"),
            "drain_seconds": _median(loaded, "drain_seconds"),
            "loader_push_seconds": _median(loaded, "loader_push_seconds"),
            **{f"{name}_cpu": {k: _cpu_median(group, k) for k in (
                "machine_pct", "server_pct", "trivy_pct", "bench_pct", "kernel_pct", "other_pct")}
               for name, group in (("idle", idle), ("loaded", loaded))}}
    return {"rows": rows, "details": details}


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def render(results: dict, summary: dict, args) -> str:
    return "\n".join(["", "samples (seconds):", *_sample_lines(results), "",
                      *_table_lines(summary["rows"]), "", *_detail_lines(summary, args)])


def _sample_lines(results: dict) -> list[str]:
    lines = []
    for rnd in results["findings_retaken"] + results["findings"]:
        berth, bare = rnd["berth"], rnd["bare"]
        retaken = " RETAKEN (noisy)" if rnd in results["findings_retaken"] else ""
        lines.append(
            f"  findings r{berth['round']}: berth {_fmt(berth['seconds'])} (push "
            f"{_fmt(berth['push_seconds'])} + scan {_fmt(berth['scan_seconds'])}: to trivy "
            f"{_fmt(berth.get('to_trivy_seconds'))}, trivy {_fmt(berth.get('trivy_seconds'))}, "
            f"after {_fmt(berth.get('after_trivy_seconds'))}) {berth['findings']} findings "
            f"| bare {_fmt(bare['seconds'])} {bare['findings']} findings | other cpu "
            f"{berth['cpu']['other_pct']:.0f}%/{bare['cpu']['other_pct']:.0f}%, wrote "
            f"{berth['cpu']['other_write_mb']:.0f}/{bare['cpu']['other_write_mb']:.0f} MB"
            f"{retaken}")
    for s in results["push"]:
        cpu = s["cpu"]
        loaded = (f" | scans unfinished {s['unfinished_before']}->{s['unfinished_after']}, "
                  f"trivy seen {cpu['trivy_running_pct']:.0f}% (stopped "
                  f"{cpu['trivy_stopped_pct']:.0f}%)"
                  f"{'' if s['busy'] else ' NOT BUSY (excluded)'}"
                  if s["condition"] == "loaded" else "")
        lines.append(f"  push r{s['round']} {s['condition']:6} #{s['index']}: "
                     f"{_fmt(s['seconds'])} ({s['mb_per_s']:.0f} MB/s) | cpu server "
                     f"{cpu['server_pct']:.0f}% trivy {cpu['trivy_pct']:.0f}% kernel "
                     f"{cpu['kernel_pct']:.0f}% other {cpu['other_pct']:.0f}% "
                     f"(wrote {cpu['other_write_mb']:.0f} MB){loaded}"
                     f"{' RETAKEN (noisy)' if s.get('retaken') else ''}")
    return lines


def _table_lines(rows: list[dict]) -> list[str]:
    lines = [f"{'comparison':48} {'median':>9} {'vs':>9} {'ratio':>7} {'target':>8}  result",
             "-" * 92]
    for row in rows:
        flags = f"  ({row['noisy']} noisy samples)" if row["noisy"] else ""
        lines.append(f"{row['name']:48} {_fmt(row['numerator']):>8}s "
                     f"{_fmt(row['denominator']):>8}s {_fmt(row['ratio'], '.2f'):>6}x "
                     f"{row['target']:>8}  {row['result']}{flags}")
        if "error" in row:
            lines.append(f"    {row['error']}")
    return lines


def _detail_lines(summary: dict, args) -> list[str]:
    lines, details = [], summary["details"]
    if "findings" in details:
        d = details["findings"]
        lines.append(
            f"push-to-findings, Berth (medians): push {_fmt(d['push_seconds'])}s + scan-only "
            f"{_fmt(d['scan_seconds'])}s = until trivy starts {_fmt(d['to_trivy_seconds'])}s + "
            f"trivy image+convert {_fmt(d['trivy_seconds'])}s + store/observe "
            f"{_fmt(d['after_trivy_seconds'])}s; findings {d['finding_counts']}; poll "
            f"{args.poll:g}s; {d['retaken_rounds']} rounds retaken")
    if "push" in details:
        d = details["push"]
        lines += [
            f"push {args.push_mib} MiB (OCI API, POST + monolithic PUT): idle "
            f"{_fmt(d['idle_mb_per_s'], '.0f')} MB/s, loaded {_fmt(d['loaded_mb_per_s'], '.0f')} "
            f"MB/s; in loaded pushes trivy was seen in >= {_fmt(d['trivy_running_pct_min'], '.0f')}"
            f"% of samples (all stopped in {_fmt(d['trivy_stopped_pct_median'], '.0f')}%, median) "
            f"and >= {d['unfinished_scans_after_push_min']} scans were unfinished "
            f"at the end ({d['loaded_not_busy']} not busy, excluded); {args.loaders} scans took "
            f"{_fmt(d['drain_seconds'], '.1f')}s after the loader pushes",
            "cpu during the timed pushes, % of all cores (medians): " + "; ".join(
                f"{name}: " + ", ".join(f"{k.removesuffix('_pct')} {_fmt(v, '.0f')}"
                                        for k, v in d[f"{name}_cpu"].items())
                for name in ("idle", "loaded"))]
    return lines


def machine_info(trivy: Path | None) -> dict:
    def output(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                                  cwd=Path(__file__).resolve().parent).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg": os.getloadavg(),
            "trivy": str(trivy), "trivy_version": output([str(trivy), "--version"])[:80],
            "berth_commit": output(["git", "rev-parse", "--short", "HEAD"]),
            "berth_dirty": bool(output(["git", "status", "--porcelain"]))}
