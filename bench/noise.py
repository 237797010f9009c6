"""How busy the machine was with other work while a sample ran.

On a 2-core machine one stray test run halves a server's throughput, and the numbers do not
say so. Each sample therefore records the CPU time of user processes that are neither the
target's processes nor this benchmark process and its children (wrk): ``other_cpu_pct``,
in percent of all cores over the sample's wall time; the report flags samples above
``NOISY_PCT``. Kernel work is not "other": kernel threads (disk writeback of a target that
does not fsync, for example) and interrupt/softirq time (loopback TCP) are caused by the
workload itself, and are recorded separately as ``kernel_cpu_pct``, as is hypervisor steal.

A target's processes are its process group plus any companions working for it — the PostgreSQL
cluster of ``berth-pg`` (postmaster, checkpointer, walwriter, one backend per connection) —
and their CPU is ``target_cpu_pct``. A process's count includes its reaped children
(``cutime``/``cstime``): a PostgreSQL backend or autovacuum worker that exits during the
sample is reaped by the postmaster, so its CPU stays the target's instead of turning into
"other" when it leaves /proc.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from bench.procstat import cpu_ticks, process_stats

NOISY_PCT = 15.0
_TICK = os.sysconf("SC_CLK_TCK")


_PF_KTHREAD = 0x00200000


def machine_ticks() -> tuple[int, int, int]:
    """(process ticks, irq + softirq ticks, steal ticks) across all cores, from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system, irq + softirq, steal


def kthread_ticks() -> dict[int, int]:
    return {pid: int(fields[11]) + int(fields[12]) for pid, fields in process_stats()
            if int(fields[6]) & _PF_KTHREAD}


def tick_delta(end: dict[int, int], begin: dict[int, int]) -> int:
    # A process gone from /proc lost its ticks; a new one counts from zero.
    return sum(ticks - begin.get(pid, 0) for pid, ticks in end.items())


def own_ticks() -> float:
    times = os.times()
    return (times.user + times.system + times.children_user + times.children_system) * _TICK


@dataclass
class _Snapshot:
    wall: float
    busy: int
    irq: int
    steal: int
    kthreads: dict[int, int]
    target: dict[int, int]
    own: float


class CpuNoise:
    """Snapshot at ``start()``, again at ``stop()`` (call before the target is stopped)."""

    def __init__(self, target_pids: Callable[[], list[int]]) -> None:
        self._pids = target_pids
        self._start: _Snapshot | None = None

    def _snap(self) -> _Snapshot:
        busy, irq, steal = machine_ticks()
        return _Snapshot(time.monotonic(), busy, irq, steal, kthread_ticks(),
                         cpu_ticks(self._pids()), own_ticks())

    def start(self) -> None:
        self._start = self._snap()

    def stop(self) -> dict[str, float]:
        assert self._start is not None
        end, begin = self._snap(), self._start
        capacity = max((end.wall - begin.wall) * _TICK * (os.cpu_count() or 1), 1e-9)
        target = tick_delta(end.target, begin.target)
        kernel = tick_delta(end.kthreads, begin.kthreads)
        other = (end.busy - begin.busy) - kernel - target - (end.own - begin.own)
        pct = lambda ticks: round(max(ticks, 0) / capacity * 100, 1)  # noqa: E731
        return {
            "other_cpu_pct": pct(other),
            "target_cpu_pct": pct(target),
            "kernel_cpu_pct": pct(kernel + end.irq - begin.irq),
            "steal_pct": pct(end.steal - begin.steal),
        }


def wait_until_quiet(*, max_wait_s: float, busy_below_pct: float = 10.0) -> float:
    """Wait (bounded) for a one-second window in which the whole machine is nearly idle.

    Called between samples, when nothing of the benchmark runs, so any CPU use is someone
    else's. Returns the seconds waited (``max_wait_s`` means it never got quiet).
    """
    started = time.monotonic()
    while True:
        busy_before, kernel_before = machine_ticks()[0], kthread_ticks()
        time.sleep(1.0)
        busy_after, kernel_after = machine_ticks()[0], kthread_ticks()
        busy = busy_after - busy_before - tick_delta(kernel_after, kernel_before)
        pct = busy / (_TICK * (os.cpu_count() or 1)) * 100
        waited = time.monotonic() - started
        if pct < busy_below_pct or waited >= max_wait_s:
            return round(waited, 1)
