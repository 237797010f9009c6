"""Small hand-written fakes for the job runtime: virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Callable


class FakeClock:
    """Virtual time: ``clock()`` reads it, ``await clock.sleep(s)`` waits until a test moves
    it past the deadline with ``advance``/``tick``. Nothing ever really sleeps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + seconds, next(self._seq), future))
        await future

    def waiting(self) -> int:
        """How many tasks are parked in ``sleep``."""
        return sum(1 for *_, future in self._timers if not future.done())

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._timers)
            if not future.done():
                future.set_result(None)

    async def tick(self, seconds: float, *, steps: int = 1) -> None:
        """Advance in ``steps`` equal parts, letting woken tasks run after each."""
        for _ in range(steps):
            self.advance(seconds / steps)
            for _ in range(20):
                await asyncio.sleep(0)


async def settle(condition: Callable[[], bool], *, rounds: int = 200) -> None:
    """Yield to the loop until ``condition()`` holds (work moving through a thread pool)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")
