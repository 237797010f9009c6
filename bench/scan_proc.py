"""Where the CPU went during a timed interval, from /proc (Linux only).

``CpuWindow`` samples, every ``interval`` seconds while it is open:

- the machine's busy ticks (``/proc/stat``: user + nice + system + irq + softirq);
- the Berth server process (its own threads; Trivy is not counted here);
- the Trivy processes the server started (children of any server thread, found through
  ``/proc/<pid>/task/<tid>/children``; Trivy runs in its own session, so not in the server's
  process group), each followed while alive: a process that ends between two samples loses at
  most one interval of ticks;
- this benchmark process and the children it waited for (the bare Trivy run, the client).

``other`` is the CPU of every other user process (a snapshot of all of /proc when the window
opens and closes): unrelated load, i.e. noise; a process that starts and ends inside the
window is missed. ``other_write_mb`` is what those processes wrote to storage (another
benchmark's pushes compete for the disk without showing up as CPU). Kernel threads (disk
writeback, the ext4 journal: work the measured pushes cause) are ``kernel``, not noise.
CPU is in per cent of *all* cores over the window. ``trivy_running_pct`` is how often a
Trivy process was alive at a sample: the evidence that a scan really ran while a push was
timed; ``trivy_stopped_pct`` how often all of them were stopped (SIGSTOP) at a sample.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def machine_ticks() -> tuple[int, int]:
    """(busy ticks, all ticks) summed over every core since boot."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return [data[:data.rfind(b")")].split(b"(", 1)[-1]] + data[data.rfind(b")") + 2:].split()


def process_ticks(pid: int, *, children: bool = False) -> int:
    """utime + stime of ``pid`` (plus its waited-for children's with ``children``), 0 if gone."""
    fields = _stat(pid)
    if fields is None:
        return 0
    ticks = int(fields[12]) + int(fields[13])
    return ticks + (int(fields[14]) + int(fields[15]) if children else 0)


_PF_KTHREAD = 0x00200000


def all_processes() -> dict[int, tuple[int, bool, int]]:
    """{pid: (utime + stime, is a kernel thread, bytes written to storage)} of every
    process now (``write_bytes`` of ``/proc/<pid>/io``, 0 where unreadable)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                found[int(entry)] = (int(fields[12]) + int(fields[13]),
                                     bool(int(fields[7]) & _PF_KTHREAD), _written(entry))
    return found


def _written(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/io") as handle:
            for line in handle:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def trivy_children(server_pid: int) -> dict[int, tuple[int, bool]]:
    """{pid: (ticks, stopped)} of the server's live child processes named ``trivy``;
    ``stopped`` is state T (Berth SIGSTOPs its scans while it receives uploads)."""
    found: dict[int, tuple[int, bool]] = {}
    try:
        tasks = os.listdir(f"/proc/{server_pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{server_pid}/task/{tid}/children") as handle:
                pids = [int(p) for p in handle.read().split()]
        except OSError:
            continue
        for pid in pids:
            fields = _stat(pid)
            if fields is not None and fields[0].startswith(b"trivy") and fields[1] != b"Z":
                found[pid] = (int(fields[12]) + int(fields[13]), fields[1] in (b"T", b"t"))
    return found


@dataclass(frozen=True)
class CpuShares:
    """Per cent of all cores over the window (100 = every core busy the whole time)."""

    seconds: float
    machine_pct: float
    server_pct: float
    trivy_pct: float
    bench_pct: float
    kernel_pct: float
    other_pct: float
    other_write_mb: float  # bytes other processes sent to storage during the window
    trivy_running_pct: float  # share of samples at which a Trivy process was alive
    trivy_stopped_pct: float  # share of samples at which every live Trivy was stopped
    samples: int

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


class CpuWindow:
    """``with CpuWindow(server_pid) as window: ...``; then ``window.shares``."""

    def __init__(self, server_pid: int | None, *, interval: float = 0.01) -> None:
        self.server_pid = server_pid
        self.interval = interval
        self.shares: CpuShares | None = None
        self._trivy_first: dict[int, int] = {}
        self._trivy_last: dict[int, int] = {}
        self._samples = self._running = self._stopped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)

    def _sample(self) -> None:
        if self.server_pid is None:
            return
        current = trivy_children(self.server_pid)
        for pid, (ticks, _) in current.items():
            # A process first seen mid-window started mid-window (or ran before it: then the
            # ticks it had at its first sample belong to the time before, and are dropped).
            self._trivy_first.setdefault(pid, ticks if self._samples == 0 else 0)
            self._trivy_last[pid] = ticks
        self._samples += 1
        self._running += bool(current)
        self._stopped += bool(current) and all(stopped for _, stopped in current.values())

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "CpuWindow":
        self._processes0 = all_processes()
        self._sample()
        self._t0 = time.monotonic()
        self._machine0 = machine_ticks()
        self._server0 = process_ticks(self.server_pid) if self.server_pid else 0
        times = os.times()
        self._bench0 = times.user + times.system + times.children_user + times.children_system
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        seconds = time.monotonic() - self._t0
        busy1, all1 = machine_ticks()
        processes1 = all_processes()
        busy0, all0 = self._machine0
        server = (process_ticks(self.server_pid) if self.server_pid else 0) - self._server0
        trivy = sum(self._trivy_last[p] - self._trivy_first[p] for p in self._trivy_last)
        times = os.times()
        bench = (times.user + times.system + times.children_user + times.children_system
                 - self._bench0) * TICK
        span = max(all1 - all0, 1)  # ticks of all cores over the window
        ours = {self.server_pid, os.getpid(), *self._trivy_last}
        kernel = other = other_written = 0
        for pid, (ticks, kthread, written) in processes1.items():
            ticks0, _, written0 = self._processes0.get(pid, (0, kthread, 0))
            if kthread:
                kernel += ticks - ticks0
            elif pid not in ours:
                other += ticks - ticks0
                other_written += written - written0

        def pct(ticks: float) -> float:
            return 100.0 * ticks / span

        self.shares = CpuShares(
            seconds=seconds, machine_pct=pct(busy1 - busy0), server_pct=pct(server),
            trivy_pct=pct(trivy), bench_pct=pct(bench), kernel_pct=pct(kernel),
            other_pct=pct(other), other_write_mb=other_written / 1e6,
            trivy_running_pct=100.0 * self._running / max(self._samples, 1),
            trivy_stopped_pct=100.0 * self._stopped / max(self._samples, 1),
            samples=self._samples)


def wait_quiet(*, limit: float, busy_pct: float = 15.0, window: float = 0.5) -> float:
    """Wait (at most ``limit`` seconds) for a ``window`` in which the machine is less than
    ``busy_pct`` busy; return the busy per cent of the last window."""
    deadline = time.monotonic() + limit
    while True:
        busy0, all0 = machine_ticks()
        time.sleep(window)
        busy1, all1 = machine_ticks()
        busy = 100.0 * (busy1 - busy0) / max(all1 - all0, 1)
        if busy < busy_pct or time.monotonic() >= deadline:
            return busy
