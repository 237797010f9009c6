"""Background work of a Berth server process: the webhook event consumers, the scan worker,
the webhook worker and the vulnerability-DB sync. ``setup(app)`` is called by the app factory.

Scans and webhook deliveries run on separate Workers so a burst of deliveries never delays a
scan (and the reverse); within the scan queue, push-triggered scans outrank rescans.

Event consumers: one per webhook endpoint (``webhook:<name>``), starting at the newest event
when the endpoint is first configured. Scans need none: the scan-on-push job is queued in
the push's own transaction. An endpoint removed from the config keeps its cursor, and
holds back event pruning, until an operator drops it (``drop_consumer``): re-enabled, it
receives what it missed.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import time
from pathlib import Path
from typing import IO, AsyncIterator

from aiohttp import web

from registry.appkeys import (
    BLOB_CACHE, BLOBS, CONFIG, JOBS_QUEUED, METADATA, NODE, UPLOAD_ACTIVITY,
)
from registry.events import Consumers, EventConsumer, Job, JobQueue, RetryableError
from registry.worker import RetryPolicy, Worker
from registry.scanning import SCAN_JOB
from scanner.dbsync import DatabaseSync
from scanner.jobs import RetryScan, ScanService
from scanner.trivy import TrivyScanner
from scanner.webhooks import (
    DELIVER_JOB, DeliveryLog, Endpoint, WebhookDeliverer, WebhookSubscriber,
)

log = logging.getLogger(__name__)
POLL_INTERVAL = 0.5
PURGE_INTERVAL = 3600.0
KEEP_SUCCEEDED = 24 * 3600.0
KEEP_FAILED = 14 * 24 * 3600.0
# Events every consumer has passed stay this long: history for a consumer that is added
# later with start="earliest".
KEEP_EVENTS = 7 * 24 * 3600.0


def scanner_dirs(data_dir: Path) -> tuple[Path, Path, Path, IO[str]]:
    """(shared DB dir, a Trivy cache slot this process holds, scratch dir, the slot's lock).

    Trivy's cache is single-writer, so each worker process takes a numbered slot, held by an
    flock for the process's life: slots are reused across restarts instead of a cache per
    PID piling up."""
    base = data_dir / "scanner"
    slots = base / "cache"
    slots.mkdir(parents=True, exist_ok=True)
    for index in range(256):
        handle = open(slots / f"slot-{index}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return base / "db", slots / f"slot-{index}", base / "work", handle
    raise RuntimeError("no free scanner cache slot")


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_background)


async def _background(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    metadata = app[METADATA]
    queue = JobQueue(metadata)
    node = app[NODE]
    endpoints = [Endpoint.from_config(entry) for entry in config.webhooks]
    consumers = Consumers(metadata, webhook_consumers(endpoints, region=config.region))
    try:
        # Before the server takes requests: "latest" then means "from this start on".
        await consumers.register()
    except Exception:  # the database may be back later: the first pump registers then
        log.exception("event consumer registration failed")
    deliverer = WebhookDeliverer(endpoints, DeliveryLog(metadata))
    workers = [Worker(queue, {DELIVER_JOB: deliverer}, node=node, concurrency=4,
                      lease_seconds=60, poll_interval=POLL_INTERVAL, consumers=consumers,
                      retry=RetryPolicy(base=1.0, cap=300.0, max_attempts=10))]
    tasks = []
    slot_lock = None
    if config.scanner.enabled:
        shared, cache, work, slot_lock = scanner_dirs(config.data_dir)
        binary = Path(config.scanner.trivy_path) if config.scanner.trivy_path else None
        scanner = TrivyScanner(binary, cache_dir=cache, db_dir=shared,
                               timeout=config.scanner.timeout_seconds)
        sync = DatabaseSync(metadata, app[BLOBS], config, shared)
        service = ScanService(metadata, app[BLOBS], app[BLOB_CACHE], scanner, work,
                              config.region)

        async def scan(job: Job) -> None:
            await sync.sync()
            try:
                await service.run(job.payload)
            except RetryScan as exc:
                raise RetryableError(str(exc)) from exc

        scan_worker = Worker(queue, {SCAN_JOB: scan}, node=node,
                             concurrency=config.scanner.concurrency,
                             lease_seconds=max(60.0, config.scanner.timeout_seconds * 1.5),
                             poll_interval=POLL_INTERVAL,
                             retry=RetryPolicy(base=5.0, cap=600.0, max_attempts=5))
        workers.append(scan_worker)
        app[JOBS_QUEUED].append(scan_worker.wake)
        yielder = YieldToUploads(scanner)
        app[UPLOAD_ACTIVITY].listeners.append(yielder)
        tasks.append(asyncio.create_task(_every(yielder.check, 1.0)))
        tasks.append(asyncio.create_task(_every(sync.sync, config.scanner.db_check_seconds)))
    tasks += [asyncio.create_task(worker.run()) for worker in workers]
    deliveries = DeliveryLog(metadata)

    async def purge() -> None:
        # Finished jobs and deliveries are history: keep a day of successes and two weeks of
        # failures for inspection (`berth webhooks deliveries`), then let them go.
        now = time.time()
        await queue.purge(succeeded_before=now - KEEP_SUCCEEDED, failed_before=now - KEEP_FAILED)
        await metadata.prune_events(before=now - KEEP_EVENTS)
        await deliveries.purge(before=now - KEEP_FAILED)

    tasks.append(asyncio.create_task(_every(purge, PURGE_INTERVAL)))
    yield
    for worker in workers:
        await worker.stop(grace=5.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await deliverer.close()
    if slot_lock is not None:
        slot_lock.close()


def webhook_consumers(endpoints: list[Endpoint], *, region: str) -> list[EventConsumer]:
    """One event consumer per endpoint, so each has its own cursor: a new endpoint starts
    at the newest event, a paused one resumes where it stopped."""
    return [EventConsumer(f"webhook:{e.name}", WebhookSubscriber([e], region=region),
                          start="latest") for e in endpoints]


class YieldToUploads:
    """Scans pause while this process receives uploads, so pushes keep their speed on a
    small machine; never longer than ``max_pause`` seconds in a row, after which scans get
    ``cooldown`` seconds of guaranteed progress (a constantly busy registry still scans)."""

    max_pause = 10.0
    cooldown = 5.0

    def __init__(self, scanner: TrivyScanner, *, clock=time.monotonic) -> None:
        self.scanner = scanner
        self.clock = clock
        self.paused_since: float | None = None
        self.no_pause_until = 0.0

    def __call__(self, busy: bool) -> None:
        now = self.clock()
        if busy and self.paused_since is None and now >= self.no_pause_until:
            self.paused_since = now
            self.scanner.pause()
        elif not busy and self.paused_since is not None:
            self.paused_since = None
            self.scanner.resume()

    async def check(self) -> None:
        now = self.clock()
        if self.paused_since is not None and now - self.paused_since > self.max_pause:
            self.paused_since = None
            self.no_pause_until = now + self.cooldown
            self.scanner.resume()


async def _every(job, interval: float) -> None:
    while True:
        try:
            await job()
        except Exception:
            log.exception("background task failed", extra={"task": job.__name__})
        await asyncio.sleep(interval)
