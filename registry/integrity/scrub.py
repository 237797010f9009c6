"""The periodic scrub: fsck's hashing and repair, inside the server, at low priority.

One worker at a time runs a pass (under the "scrub" lease, like GC) on a thread of its own
that lowers its CPU priority to nice 19 and reads at most ``[storage] scrub_bytes_per_second``,
so pushes are not starved. A corrupt blob is quarantined and forgotten exactly as by
``berth fsck --repair`` (clients then push it again), logged as an error naming the
repositories that held it, counted in ``berth_blob_corruptions_found_total{source="scrub"}``,
and evicted from this process's small-blob cache.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from registry.integrity.check import hash_all, list_blobs
from registry.integrity.repair import quarantine_blob
from registry.metadata.integrity import IntegrityStore
from registry.storage.base import BlobCheck
from registry.storage.base import BlobStore

log = logging.getLogger(__name__)

MAX_CREDIT = 1.0  # seconds of unused rate a throttle may spend at once after a slow stretch


class ScrubStopped(Exception):
    """The server is shutting down; the pass ends at the next block."""


def lower_priority() -> None:
    """Make the calling thread the last to get CPU (Linux: nice is per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        log.warning("cannot lower scrub thread priority")


class Throttle:
    """Caps a byte rate by sleeping between blocks; ``stop`` interrupts a sleep."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 stop: threading.Event | None = None,
                 sleep: Callable[[float], object] | None = None) -> None:
        self.rate = rate
        self.clock = clock
        self.stop = stop or threading.Event()
        self.sleep = sleep or self.stop.wait
        self.started: float | None = None
        self.done = 0

    def consume(self, count: int) -> None:
        if self.stop.is_set():
            raise ScrubStopped
        now = self.clock()
        if self.started is None:
            self.started = now
        behind = (now - self.started) - self.done / self.rate
        if behind > MAX_CREDIT:
            self.started += behind - MAX_CREDIT
        self.done += count
        ahead = self.done / self.rate - (now - self.started)
        if ahead > 0:
            self.sleep(ahead)


@dataclass
class ScrubReport:
    checked: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


def scrub_pass(metadata: IntegrityStore, blobs: BlobStore, *, rate: float,
               metrics=None, evict: Callable[[str], None] | None = None,
               stop: threading.Event | None = None) -> ScrubReport:
    """One pass over every blob (synchronous: run it on the scrub thread)."""
    report = ScrubReport()
    started = time.time()
    throttle = Throttle(rate, stop=stop)

    def on_bytes(count: int) -> None:
        throttle.consume(count)
        if metrics is not None:
            metrics.scrub_bytes.inc(count)

    def on_corrupt(check: BlobCheck) -> None:
        digest = str(check.digest)
        report.corrupt.append(digest)
        moved = quarantine_blob(metadata, blobs, check, now=time.time(), checked_since=started)
        if metrics is not None:
            metrics.blob_corruptions.labels(source="scrub").inc()
        if evict is not None:
            evict(digest)
        if moved is None:
            return
        report.quarantined.append(digest)
        log.error("corrupt blob quarantined", extra={
            "digest": digest, "actual": f"{check.digest.algorithm}:{check.actual}",
            "size": check.size, "quarantine": moved.path, "repositories": moved.repositories})

    try:
        run = hash_all(blobs, list_blobs(blobs), on_bytes=on_bytes, on_corrupt=on_corrupt)
    except ScrubStopped:
        return report
    report.checked, report.bytes = run.checked, run.bytes
    if metrics is not None:
        metrics.scrub_completed.set(time.time())
    log.info("scrub finished", extra={"blobs": report.checked, "bytes": report.bytes,
                                      "corrupt": len(report.corrupt)})
    return report
