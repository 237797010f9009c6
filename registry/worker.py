"""Workers: run queued jobs with bounded concurrency, leases and capped backoff.

The queue itself (states, claims, the outbox fan-out) is in ``registry.events``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from registry.events import FanOut, Job, JobQueue, PermanentError, RetryableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter (delay ~ U(0, min(cap, base * 2^(n-1))))
    after the n-th failed attempt: spreads a burst of failures instead of re-aligning it."""

    base: float = 1.0
    cap: float = 600.0
    max_attempts: int = 8

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** max(attempt - 1, 0)))


Handler = Callable[[Job], Awaitable[None]]


class Worker:
    """Runs jobs of ``handlers``' kinds with bounded concurrency.

    A handler returning means done; ``PermanentError`` fails the job; anything else is
    retried with ``retry`` backoff until ``retry.max_attempts``. Leases are renewed every
    third of ``lease_seconds`` while a handler runs. ``clock`` and ``sleep`` are injectable so
    tests drive time instead of waiting for it (STYLE 11). ``fanout``, if given, is pumped on
    every poll; one per process is enough, more are harmless.
    """

    def __init__(self, queue: JobQueue, handlers: Mapping[str, Handler], *,
                 concurrency: int = 4, lease_seconds: float = 60.0,
                 retry: RetryPolicy = RetryPolicy(), poll_interval: float = 1.0,
                 fanout: FanOut | None = None, timeout: float | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None, owner: str | None = None) -> None:
        if concurrency < 1 or lease_seconds <= 0:
            raise ValueError("concurrency must be >= 1 and lease_seconds > 0")
        self.queue, self.handlers, self.fanout = queue, dict(handlers), fanout
        self.concurrency, self.lease_seconds, self.retry = concurrency, lease_seconds, retry
        self.poll_interval, self.timeout = poll_interval, timeout
        self.clock = clock or queue.clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Counting running tasks, not an asyncio.Semaphore that jobs queue on: a job is
        # claimed only when a slot is free, so its lease never ticks while it waits.
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._polling_done = asyncio.Event()
        self._polling_done.set()

    async def _poll(self) -> tuple[int, int]:
        """Pump the fan-out, claim jobs for the free slots and start them; return how many
        events and jobs were taken."""
        events = await self.fanout.pump() if self.fanout is not None else 0
        free = self.concurrency - len(self._running)
        jobs = await self.queue.claim(self.handlers, self.owner, lease_seconds=self.lease_seconds,
                                      limit=free, now=self.clock()) if free > 0 else []
        for job in jobs:
            task = asyncio.create_task(self._execute(job))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return events, len(jobs)

    async def run_until_idle(self) -> int:
        """Run until nothing is due now and nothing runs (tests); return how many jobs ran."""
        ran = 0
        while True:
            events, jobs = await self._poll()
            ran += jobs
            if self._running:
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            elif events + jobs == 0:
                return ran

    async def run(self) -> None:
        """Poll until ``stop``. Database errors are logged and retried after a poll interval."""
        self._polling_done.clear()
        try:
            while not self._stopping.is_set():
                try:
                    taken = sum(await self._poll())
                except Exception:
                    log.exception("job poll failed")
                    taken = 0
                if taken == 0 or len(self._running) >= self.concurrency:
                    await self._idle()
        finally:
            self._polling_done.set()

    def wake(self) -> None:
        """Poll now: this process just queued work for this worker (saves a poll interval
        of latency; other processes still find the job on their next poll)."""
        self._wakeup.set()

    async def _idle(self) -> None:
        """Wait for a poll interval, a wake-up, a free slot or ``stop``, whichever is first."""
        waits = [asyncio.ensure_future(self._sleep(self.poll_interval)),
                 asyncio.ensure_future(self._stopping.wait()),
                 asyncio.ensure_future(self._wakeup.wait()), *self._running]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits[:3]:
                waiter.cancel()
            self._wakeup.clear()

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop claiming; let running jobs finish for ``grace`` seconds, then cancel them
        (their jobs are released, due at once, for the next worker)."""
        self._stopping.set()
        await self._polling_done.wait()  # a claim in flight still starts its jobs
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _execute(self, job: Job) -> None:
        if job.attempts > self.retry.max_attempts:
            # The previous claim never reported back (its worker died): stop replaying.
            await self.queue.fail(job, f"gave up after {job.attempts - 1} attempts; "
                                  f"the last one never finished (lease expired)")
            return
        renewer = asyncio.create_task(self._renew(job))
        try:
            outcome = await self._call(job)
        except asyncio.CancelledError:
            await asyncio.shield(self.queue.release(job))
            raise
        finally:
            renewer.cancel()
        try:
            await self._settle(job, outcome)
        except Exception:
            # The lease will expire and the job will be replayed: at-least-once.
            log.exception("job outcome not recorded", extra={"job": job.id, "kind": job.kind})

    async def _call(self, job: Job) -> BaseException | None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.handlers[job.kind](job)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every job failure becomes an outcome
            return exc
        return None

    async def _settle(self, job: Job, exc: BaseException | None) -> None:
        fields = {"job": job.id, "kind": job.kind, "attempt": job.attempts}
        if exc is None:
            await self.queue.complete(job)
            return
        error = str(exc) if isinstance(exc, (RetryableError, PermanentError)) \
            else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, PermanentError):
            log.warning("job failed permanently", extra={**fields, "error": error})
            await self.queue.fail(job, error)
        elif job.attempts >= self.retry.max_attempts:
            log.warning("job failed; attempts exhausted", extra={**fields, "error": error})
            await self.queue.fail(job, f"{error} (gave up after {job.attempts} attempts)")
        else:
            delay = self.retry.delay(job.attempts, self._rng)
            if isinstance(exc, RetryableError) and exc.retry_after:
                delay = min(max(delay, exc.retry_after), self.retry.cap)
            if isinstance(exc, (RetryableError, TimeoutError)):
                log.info("job will be retried", extra={**fields, "delay": delay, "error": error})
            else:  # an unexpected exception: a bug or an unclassified fault, keep the trace
                log.error("job raised; will be retried", exc_info=exc,
                          extra={**fields, "delay": delay})
            await self.queue.retry(job, error, delay=delay)

    async def _renew(self, job: Job) -> None:
        while True:
            await self._sleep(self.lease_seconds / 3)
            try:
                if not await self.queue.extend_lease(job, now=self.clock()):
                    return  # someone else holds it now; our outcome will be ignored
            except Exception:
                log.exception("lease renewal failed", extra={"job": job.id})
