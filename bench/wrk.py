"""Run ``wrk`` against one URL and parse its summary.

A run with any non-2xx/3xx response or socket error other than a handful of timeouts is not a
measurement (a 404 or 401 answered fast would look like a fast server), so it raises.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

WRK = shutil.which("wrk") or "/usr/bin/wrk"


class WrkError(Exception):
    """wrk failed, or the responses were not all successful."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_sec: float
    requests: int
    latency_avg: str
    latency_p99: str
    non_2xx: int
    socket_errors: dict[str, int]


def run_wrk(url: str, *, threads: int, connections: int, duration_s: int,
            headers: dict[str, str]) -> WrkResult:
    """Run wrk; raises WrkError unless every response was 2xx/3xx."""
    if not url.startswith("http://127."):
        raise ValueError(f"wrk targets loopback only, not {url}")
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency",
            "--timeout", "5s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    done = subprocess.run(argv + [url], capture_output=True, text=True,
                          timeout=duration_s + 60)
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> WrkResult:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not rate or not total:
        raise WrkError(f"cannot parse wrk output:\n{text}")
    latency = re.search(r"Latency\s+(\S+)", text)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"),
                             map(int, errors.groups()))) if errors else {}
    result = WrkResult(
        requests_per_sec=float(rate.group(1)),
        requests=int(total.group(1)),
        latency_avg=latency.group(1) if latency else "",
        latency_p99=p99.group(1) if p99 else "",
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )
    if result.non_2xx:
        raise WrkError(f"{result.non_2xx} of {result.requests} responses were not 2xx/3xx")
    hard = sum(v for k, v in socket_errors.items() if k != "timeout")
    if hard or socket_errors.get("timeout", 0) > result.requests // 1000:
        raise WrkError(f"socket errors {socket_errors} in {result.requests} requests")
    return result
