"""A progress bar for long byte-counting jobs: bytes done/total, rate and ETA.

Drawn on a terminal only (carriage return and erase-line, redrawn at most every
``interval`` seconds); anything else gets no progress output at all, so logs and pipes stay
free of escape codes.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO

WIDTH = 24


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, stream: TextIO, *, clock: Callable[[], float] = time.monotonic,
                 interval: float = 0.2, tty: bool | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self.enabled = stream.isatty() if tty is None else tty
        self.started = clock()
        self._drawn_at: float | None = None

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = self.clock()
        if self._drawn_at is None or now - self._drawn_at >= self.interval:
            self._draw(now)

    def finish(self) -> None:
        if self.enabled:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(WIDTH * min(fraction, 1.0))
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = human_duration((self.total - self.done) / rate) if rate > 0 else "-:--:--"
        return (f"[{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%}  "
                f"{human_bytes(self.done)} / {human_bytes(self.total)}  "
                f"{human_bytes(rate)}/s  ETA {eta}")

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()
