"""Peak resident memory of a server's whole process group during a workload.

Two numbers, both summed over every process of the target (a ``--workers N`` server is a
supervisor plus N workers):

- ``peak_rss_mib``: the largest sum of ``VmRSS`` seen by a poller sampling every 10 ms. This
  is the memory the server really held at one instant.
- ``hwm_sum_mib``: the sum of each process's ``VmHWM`` (kernel-tracked peak) read at the end.
  Processes may peak at different times, so this is an upper bound that no short spike
  between two polls can escape.

The benchmark's goal (< 150 MiB) is checked against the larger of the two.
"""

from __future__ import annotations

import threading
from typing import Callable

_POLL_SECONDS = 0.01


def status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_kib(pids: list[int]) -> int:
    return sum(status_kib(pid, b"VmRSS:") for pid in pids)


def hwm_kib(pids: list[int]) -> int:
    return sum(status_kib(pid, b"VmHWM:") for pid in pids)


class RssSampler:
    """Polls ``pids_of()`` in a background thread between ``start`` and ``stop``."""

    def __init__(self, pids_of: Callable[[], list[int]]) -> None:
        self._pids_of = pids_of
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_kib = 0
        self.samples = 0
        self.hwm_kib = 0
        self.process_count = 0

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        pids = self._pids_of()
        self.process_count = len(pids)
        self.hwm_kib = hwm_kib(pids)

    def _run(self) -> None:
        pids = self._pids_of()
        refresh = 0
        while not self._stop.is_set():
            refresh += 1
            if refresh % 50 == 0:
                pids = self._pids_of()
            self.peak_kib = max(self.peak_kib, rss_kib(pids))
            self.samples += 1
            self._stop.wait(_POLL_SECONDS)

    def result(self) -> dict[str, float]:
        return {
            "peak_rss_mib": round(self.peak_kib / 1024, 1),
            "hwm_sum_mib": round(self.hwm_kib / 1024, 1),
            "processes": self.process_count,
            "samples": self.samples,
        }
