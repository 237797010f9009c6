"""Workers: run queued jobs with bounded concurrency, leases and capped backoff.

The queue, the event consumers and the job state machine are in ``registry.events``.

Idle workers cost reads, not writes: a poll asks with a read whether anything is due (and
which event consumers are behind) and takes the write lock only to claim or consume; between
polls it waits on the database's notifications (LISTEN/NOTIFY on PostgreSQL, in-process
wake-ups on SQLite), so a new job starts at once instead of a poll interval later.

A handler never runs past its lease: the lease is renewed every third of its length, and a
local deadline (the claim's start on this process's monotonic clock + the lease - a safety
margin) moves only when a renewal succeeds. When a renewal says the lease is lost, or the
deadline passes (the database unreachable), the handler is cancelled, before any other node
can claim the job. The same holds for the node's own liveness: other nodes take a node's
jobs once its heartbeat is ``timeout`` old, so a handler is also cancelled when the node's
heartbeats have failed for that long minus the margin (``Node.alive_until``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from registry.events import Consumers, Job, JobQueue, Node, PermanentError, RetryableError

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
    retried with ``retry`` backoff until ``retry.max_attempts``. ``node`` is this process
    (``events.Node``): leases are taken under its id (``owner`` overrides it; tests), and
    handlers stop when it may be taken for dead. ``consumers``, if given, are pumped on every
    poll. ``clock`` is the local monotonic clock of lease deadlines and ``sleep`` its sleep;
    tests pass a virtual clock for both (STYLE 11).
    """

    def __init__(self, queue: JobQueue, handlers: Mapping[str, Handler], *,
                 node: Node | None = None, owner: str | None = None, concurrency: int = 4,
                 lease_seconds: float = 60.0,
                 safety_margin: float | None = None, retry: RetryPolicy = RetryPolicy(),
                 poll_interval: float = 1.0, consumers: Consumers | None = None,
                 timeout: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None) -> None:
        if concurrency < 1 or lease_seconds <= 0:
            raise ValueError("concurrency must be >= 1 and lease_seconds > 0")
        self.queue, self.handlers, self.consumers = queue, dict(handlers), consumers
        self.concurrency, self.lease_seconds, self.retry = concurrency, lease_seconds, retry
        # Time for a cancelled handler to unwind, and for clocks that tick a little apart.
        self.safety_margin = lease_seconds / 5 if safety_margin is None else safety_margin
        if not 0 <= self.safety_margin < lease_seconds / 3:
            raise ValueError("safety_margin must be below a third of lease_seconds")
        self.poll_interval, self.timeout = poll_interval, timeout
        self.clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.node = node
        self.owner = owner or (node.id if node is not None else str(uuid.uuid4()))
        # Counting running tasks, not an asyncio.Semaphore that jobs queue on: a job is
        # claimed only when a slot is free, so its lease never ticks while it waits.
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._polling_done = asyncio.Event()
        self._polling_done.set()

    async def _poll(self) -> tuple[int, int]:
        """Pump the consumers, claim jobs for the free slots and start them; return how
        many events and jobs were taken. Nothing due: reads only."""
        events = await self.consumers.pump() if self.consumers is not None else 0
        free = self.concurrency - len(self._running)
        if free <= 0 or not await self.queue.has_ready(self.handlers):
            return events, 0
        claimed_at = self.clock()  # before the claim: the lease cannot have started earlier
        jobs = await self.queue.claim(self.handlers, self.owner,
                                      lease_seconds=self.lease_seconds, limit=free)
        for job in jobs:
            task = asyncio.create_task(self._execute(job, claimed_at))
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
        """Poll now: this process just queued work for this worker."""
        self._wakeup.set()

    async def _idle(self) -> None:
        """Wait for a poll interval, a notification, a wake-up, a free slot or ``stop``."""
        waits = [asyncio.ensure_future(self._sleep(self.poll_interval)),
                 asyncio.ensure_future(self._stopping.wait()),
                 asyncio.ensure_future(self._wakeup.wait()),
                 asyncio.ensure_future(self.queue.wait(self.poll_interval))]
        if self.consumers is not None:
            waits.append(asyncio.ensure_future(self.consumers.wait(self.poll_interval)))
        try:
            await asyncio.wait([*waits, *self._running], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
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

    async def _execute(self, job: Job, claimed_at: float) -> None:
        if job.attempts > self.retry.max_attempts:
            # The previous claim never reported back (its worker died): stop replaying.
            await self.queue.fail(job, f"gave up after {job.attempts - 1} attempts; "
                                  f"the last one never finished (lease expired)")
            return
        handler = asyncio.create_task(self._call(job))
        try:
            held = await self._hold_lease(job, handler, claimed_at)
        except asyncio.CancelledError:  # stop(): give the job back for the next worker
            handler.cancel()
            await asyncio.gather(handler, return_exceptions=True)
            await asyncio.shield(self.queue.release(job))
            raise
        if not held:
            handler.cancel()
            await asyncio.gather(handler, return_exceptions=True)
            log.warning("job lease lost; handler cancelled",
                        extra={"job": job.id, "kind": job.kind, "attempt": job.attempts})
            return
        try:
            await self._settle(job, handler.result())
        except Exception:
            # The lease will expire and the job will be replayed: at-least-once.
            log.exception("job outcome not recorded", extra={"job": job.id, "kind": job.kind})

    async def _hold_lease(self, job: Job, handler: asyncio.Task, claimed_at: float) -> bool:
        """Renew the lease until ``handler`` ends; False as soon as the lease is lost or its
        local deadline passed (the caller cancels the handler then)."""
        lease_deadline = claimed_at + job.lease_seconds - self.safety_margin
        renew_at = claimed_at + job.lease_seconds / 3
        while not handler.done():
            now = self.clock()
            node_deadline = self._node_deadline()
            deadline = lease_deadline if node_deadline is None \
                else min(lease_deadline, node_deadline)
            if now >= deadline:
                log.warning("job lease may be lost; cancelling its handler",
                            extra={"job": job.id, "cause": "node heartbeats failing"
                                   if deadline == node_deadline else "lease not renewed"})
                return False
            if now < renew_at:
                pause = asyncio.ensure_future(self._sleep(min(renew_at, deadline) - now))
                await asyncio.wait({pause, handler}, return_when=asyncio.FIRST_COMPLETED)
                pause.cancel()
                continue
            started = self.clock()
            try:
                async with asyncio.timeout(max(deadline - started, 0.001)):
                    renewed = await self.queue.extend_lease(job)
            except Exception:  # unreachable or slow: try again until the deadline
                log.warning("lease renewal failed", extra={"job": job.id}, exc_info=True)
                renew_at = self.clock() + min(job.lease_seconds / 10, 1.0)
                continue
            if not renewed:
                return False
            lease_deadline = started + job.lease_seconds - self.safety_margin
            renew_at = started + job.lease_seconds / 3
        return True

    def _node_deadline(self) -> float | None:
        alive_until = None if self.node is None else self.node.alive_until()
        if alive_until is None:
            return None
        # The lease margin may exceed the node timeout (long scans): a quarter of it still
        # leaves a cancelled handler time to unwind before the node counts as dead.
        return alive_until - min(self.safety_margin, self.node.timeout / 4)

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
