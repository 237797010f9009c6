"""Durable, at-least-once background work: the event log's consumers and the job queue.

The domain lives here (event kinds, the job state machine, job values, the error types
handlers raise, the queue and consumer objects workers use); the SQL lives in
``registry.metadata`` (``eventlog.py``, ``jobs.py``, ``nodes.py``)::

    events     facts, appended in the transaction of the change they describe
               ("image.pushed", "image.deleted", "repository.deleted", "image.scanned")
       |  every consumer (one per webhook endpoint, ...) has its own cursor: ``Consumers.pump``
       |  turns the events after it into jobs and moves it, in one transaction
       v
    jobs       work ("scan.image", "webhook.deliver"), claimed by Workers with leases
    nodes      the running processes; a lease names its node, a dead node's leases end

A job's life is an explicit state machine (``transition``): queued -claim-> leased
-complete-> succeeded | -retry/release-> queued | -fail-> failed. A lease that expires (the
worker crashed or hung) or whose node stopped heartbeating makes the job claimable again, so
work is replayed, never lost (DESIGN invariant 5). Handlers must therefore be idempotent.
``attempts`` counts claims, so a job that kills its worker every time still ends FAILED
after ``max_attempts``. Lease times come from the database clock (``metadata/dbclock.py``);
a ``clock`` given to ``JobQueue``/``Consumers``/``Node`` replaces it in tests.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, NamedTuple, Sequence

from registry.metadata.models import LoggedEvent
from registry.metadata.writes import NewJob


log = logging.getLogger(__name__)

# The event vocabulary written to the event log (facts: noun.verbed). Payloads:
IMAGE_PUSHED = "image.pushed"  # {account, repository, digest, tags, mediaType}
IMAGE_DELETED = "image.deleted"  # {account, repository, digest, tag?}
REPOSITORY_DELETED = "repository.deleted"  # {account, repository}
IMAGE_SCANNED = "image.scanned"  # {account, repository, digest, tags, status, severityCounts}



class JobState(str, enum.Enum):
    QUEUED = "queued"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_TRANSITIONS: dict[tuple[JobState, str], JobState] = {
    (JobState.QUEUED, "claim"): JobState.LEASED,
    (JobState.LEASED, "claim"): JobState.LEASED,  # only once the lease has expired
    (JobState.LEASED, "extend"): JobState.LEASED,
    (JobState.LEASED, "complete"): JobState.SUCCEEDED,
    (JobState.LEASED, "retry"): JobState.QUEUED,
    (JobState.LEASED, "release"): JobState.QUEUED,
    (JobState.LEASED, "fail"): JobState.FAILED,
}


def transition(state: JobState, action: str) -> JobState:
    """The state after ``action``; the store's UPDATEs only move rows along these edges.

    Raises:
        ValueError: the action is not allowed in that state.
    """
    try:
        return _TRANSITIONS[(state, action)]
    except KeyError:
        raise ValueError(f"cannot {action} a {state.value} job") from None


def transitions_from(action: str) -> list[str]:
    """The states ``action`` may leave, drawn from the transition table (for the SQL)."""
    return sorted({s.value for (s, a) in _TRANSITIONS if a == action})


class RetryableError(Exception):
    """The job may succeed later; ``retry_after`` (seconds) is a lower bound on the wait,
    within the retry policy's cap."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying cannot help; the job ends FAILED at once and keeps this message."""


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    priority: int
    state: JobState
    created_at: float
    available_at: float
    attempts: int  # claims so far, this one included
    lease_owner: str | None  # the node id holding the lease
    lease_until: float | None
    done_at: float | None
    last_error: str | None
    source_event: int | None
    idempotency_key: str | None = None
    lease_seconds: float = 0.0  # the lease length of the claim that returned this job


class JobSpec(NamedTuple):
    """A job to create; subscribers may return plain ``(kind, payload, priority)`` tuples."""

    kind: str
    payload: dict[str, Any]
    priority: int = 0


class JobQueue:
    """Jobs in the metadata store (``store``: a ``MetadataStore``).

    ``clock``: None uses the database's clock for leases and due times (production); tests
    pass a virtual clock. Every method may raise ``StoreError`` (nothing changed then;
    Workers log and poll again).
    """

    def __init__(self, store: Any, *, clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.clock = clock

    def now(self) -> float | None:
        return None if self.clock is None else self.clock()

    async def enqueue(self, kind: str, payload: Mapping[str, Any], *, priority: int = 0,
                      available_at: float | None = None,
                      idempotency_key: str | None = None) -> int | None:
        """Add a job in its own transaction; return its id (None: a job of this kind with
        ``idempotency_key`` exists already).

        Raises:
            TypeError: ``payload`` is not JSON-serialisable.
        """
        return await self.store.enqueue_job(
            NewJob(kind, dict(payload), priority, available_at, idempotency_key),
            now=self.now())

    async def has_ready(self, kinds: Iterable[str]) -> bool:
        """A read (no write lock): is any job of ``kinds`` due?"""
        return await self.store.has_ready_jobs(list(kinds), now=self.now())

    async def claim(self, kinds: Iterable[str], owner: str, *, lease_seconds: float,
                    limit: int) -> list[Job]:
        """Lease up to ``limit`` ready jobs of ``kinds``: highest priority first, then the
        longest available. Ready means queued and due, or leased with an expired lease."""
        return await self.store.claim_jobs(list(kinds), owner, lease_seconds=lease_seconds,
                                           limit=limit, now=self.now())

    async def _move(self, job: Job, action: str, **options: Any) -> bool:
        moved = await self.store.settle_job(job, action, now=self.now(), **options)
        if not moved:
            log.warning("job lease lost", extra={"job": job.id, "kind": job.kind,
                                                 "action": action})
        return moved

    async def complete(self, job: Job) -> bool:
        """Mark a leased job succeeded; False if this claim no longer holds the lease."""
        return await self._move(job, "complete")

    async def retry(self, job: Job, error: str, *, delay: float) -> bool:
        """Queue the job again ``delay`` seconds from now, remembering ``error``."""
        return await self._move(job, "retry", error=error, delay=delay)

    async def fail(self, job: Job, error: str) -> bool:
        """End the job FAILED; the row stays, with ``error``, for inspection."""
        return await self._move(job, "fail", error=error)

    async def release(self, job: Job) -> bool:
        """Give the job back untried (a worker shutting down): due now, attempt not counted."""
        return await self._move(job, "release")

    async def extend_lease(self, job: Job) -> bool:
        """Renew the lease of a job ``claim`` returned for another ``job.lease_seconds``;
        False if it was lost."""
        return await self._move(job, "extend", lease_seconds=job.lease_seconds)

    async def get(self, job_id: int) -> Job | None:
        return await self.store.get_job(job_id)

    async def purge(self, *, succeeded_before: float, failed_before: float) -> int:
        """Delete finished jobs done before the given times (those that failed by
        ``failed_before``); return how many."""
        return await self.store.purge_jobs(succeeded_before=succeeded_before,
                                           failed_before=failed_before)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a job to be queued (by any node)."""
        return await self.store.wait_for_jobs(timeout)


Subscriber = Callable[[LoggedEvent], Iterable[JobSpec | tuple[str, dict[str, Any], int]]]


@dataclass(frozen=True)
class EventConsumer:
    """A named cursor over the event log and the pure function that makes jobs of events.

    ``start``: where a consumer seen for the first time begins — "latest" (a new webhook
    endpoint does not receive months of history) or "earliest" (everything still logged).
    """

    name: str
    subscriber: Subscriber
    start: str = "latest"

    def jobs(self, event: LoggedEvent) -> list[NewJob]:
        return [NewJob(spec.kind, spec.payload, spec.priority)
                for spec in (JobSpec(*s) for s in self.subscriber(event))]


class Consumers:
    """The event consumers of one process, pumped by a Worker.

    ``pump`` first asks with a READ which consumers have new events and only then writes,
    so an idle system never takes the write lock for them. Subscribers run inside the
    consuming transaction: keep them pure and fast; I/O belongs in the job's handler.
    """

    def __init__(self, store: Any, consumers: Sequence[EventConsumer], *,
                 clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.consumers = {c.name: c for c in consumers}
        self.clock = clock
        self._registered = False

    async def register(self) -> None:
        """Create the cursors that do not exist yet (existing ones never move)."""
        for consumer in self.consumers.values():
            await self.store.register_consumer(consumer.name, start=consumer.start)
        self._registered = True

    async def pump(self, *, limit: int = 100) -> int:
        """Consume up to ``limit`` events per consumer that is behind; return how many."""
        if not self.consumers:
            return 0
        if not self._registered:
            await self.register()
        now = None if self.clock is None else self.clock()
        moved = 0
        for name in await self.store.consumers_behind(list(self.consumers)):
            moved += await self.store.consume_events(name, self.consumers[name].jobs,
                                                     limit=limit, now=now)
        return moved

    async def wait(self, timeout: float) -> bool:
        return await self.store.wait_for_events(timeout)


class Node:
    """This process as the database knows it: a random id (the owner of every lease it
    takes), renewed by heartbeats; each beat also ends the leases of nodes whose heartbeat
    stopped ``timeout`` seconds ago, so their jobs replay now.

    Other nodes may take this node's jobs once its last recorded heartbeat is ``timeout``
    old. ``alive_until()`` says until when, on the local ``monotonic`` clock, this node can
    be sure that has not happened (the start of its last successful beat + ``timeout``):
    Workers cancel their handlers before then when beats keep failing.

    ``clock``/``monotonic``/``sleep`` are injectable (virtual time in tests; ``clock`` None
    means the database clock).
    """

    def __init__(self, store: Any, *, node_id: str | None = None, interval: float = 5.0,
                 timeout: float = 30.0, clock: Callable[[], float] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if timeout <= interval:
            raise ValueError("the node timeout must be longer than the heartbeat interval")
        self.store = store
        self.id = node_id or str(uuid.uuid4())
        self.hostname, self.pid = socket.gethostname(), os.getpid()
        self.interval, self.timeout = interval, timeout
        self.clock, self.monotonic, self._sleep = clock, monotonic, sleep
        self._last_beat: float | None = None

    def alive_until(self) -> float | None:
        """Local monotonic time until which no other node can have declared this one dead
        (None: it has not registered yet)."""
        return None if self._last_beat is None else self._last_beat + self.timeout

    def _now(self) -> float | None:
        return None if self.clock is None else self.clock()

    async def beat(self) -> int:
        """Heartbeat, then expire dead nodes; return how many of their jobs now replay."""
        started = self.monotonic()  # the recorded beat is no earlier than this
        await self.store.heartbeat(self.id, hostname=self.hostname, pid=self.pid,
                                   now=self._now())
        self._last_beat = started
        replayed = await self.store.expire_dead_nodes(self.timeout, now=self._now())
        if replayed:
            log.info("replaying jobs of a stopped node", extra={"count": replayed})
        return replayed

    async def run(self) -> None:
        """Beat every ``interval`` until cancelled; database errors are logged and retried."""
        while True:
            try:
                await self.beat()
            except Exception:
                log.exception("node heartbeat failed", extra={"node": self.id})
            await self._sleep(self.interval)

    async def stop(self) -> None:
        """Forget this node (a clean shutdown, after its workers stopped)."""
        try:
            await self.store.forget_node(self.id)
        except Exception:
            log.exception("node deregistration failed", extra={"node": self.id})
