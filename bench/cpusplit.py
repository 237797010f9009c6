"""Where the CPU went during one measurement: each part of the target, the benchmark with its
load generator, the kernel, everything else, and how busy each core was.

For the multi-node targets this answers "how was CPU split between the nodes, nginx and wrk"
from measurements rather than from the pinning alone: the nodes are pinned to one core each,
nginx and wrk are not, so their share of each core is only visible here.

Parts come from ``RunningTarget.cpu_parts()`` (a node with its children, nginx's master and
workers, the PostgreSQL cluster, the Ceph daemons). A process counts with its reaped
children (see ``bench/noise.py``); ``bench+wrk`` is this process and its reaped children, so
the split must be stopped after wrk has exited. Figures are percent of one core (two busy
cores = 200); ``cores`` gives each core's busy percent (user, system, irq, softirq: not idle
or iowait) from /proc/stat.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from bench.noise import kthread_ticks, machine_ticks, own_ticks, tick_delta
from bench.procstat import cpu_ticks

_TICK_HZ = os.sysconf("SC_CLK_TCK")


def core_ticks() -> dict[str, tuple[int, int]]:
    """Per core (``cpu0``, ``cpu1``, ...): (busy ticks, total ticks) since boot."""
    out = {}
    with open("/proc/stat") as handle:
        for line in handle:
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                if out:
                    break
                continue
            fields = [int(v) for v in values] + [0] * 8
            total = sum(fields[:8])
            out[name] = (total - fields[3] - fields[4], total)
    return out


class CpuSplit:
    """``start()`` before the measured run, ``stop()`` after it (the target still up)."""

    def __init__(self, parts: Callable[[], dict[str, list[int]]]) -> None:
        self._parts = parts
        self._begin: tuple | None = None

    def _snap(self) -> tuple:
        parts = {name: cpu_ticks(pids) for name, pids in self._parts().items()}
        return (time.monotonic(), machine_ticks(), kthread_ticks(), own_ticks(), parts,
                core_ticks())

    def start(self) -> None:
        self._begin = self._snap()

    def stop(self) -> dict:
        assert self._begin is not None
        (w0, (busy0, irq0, _), k0, own0, parts0, cores0) = self._begin
        (w1, (busy1, irq1, _), k1, own1, parts1, cores1) = self._snap()
        one_core = max((w1 - w0) * _TICK_HZ, 1e-9)
        pct = lambda ticks: round(max(ticks, 0) / one_core * 100, 1)  # noqa: E731
        split = {name: tick_delta(ticks, parts0.get(name, {}))
                 for name, ticks in parts1.items()}
        kernel = tick_delta(k1, k0)
        own = own1 - own0
        other = (busy1 - busy0) - kernel - own - sum(split.values())
        out = {name: pct(ticks) for name, ticks in split.items()}
        out.update({"bench+wrk": pct(own), "kernel": pct(kernel + irq1 - irq0),
                    "other": pct(other)})
        out["cores"] = {name: round((busy - cores0[name][0]) / max(total - cores0[name][1], 1)
                                    * 100, 1)
                        for name, (busy, total) in cores1.items() if name in cores0}
        return out
