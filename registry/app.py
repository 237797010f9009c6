"""The application factory: the only place that wires Berth together."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator

from aiohttp import web

from registry.activity import UploadActivity
from registry.api import api_endpoint
from registry.appkeys import (
    AUTHENTICATOR, AUTHORIZER, BLOB_CACHE, BLOBS, CONFIG, IDENTITIES, JOBS_QUEUED, METADATA,
    METRICS, NODE, PULL_PROTECTION, TOKENS, UPLOAD_ACTIVITY,
)
from registry.auth.authenticate import Authenticator, registry_token
from registry.auth.authorize import AllowAll
from registry.auth.credential_cache import CredentialCache
from registry.auth.identities import Identities
from registry.auth.keys import SecretBox, load_master_keys, token_signer
from registry.auth.policy_authorizer import PolicyAuthorizer
from registry.auth.policy_files import PolicyDirectory
from registry.blobcache import BlobCache
from registry.config import Config
from registry.datadir import ensure_data_dir
from registry.events import Node
from registry.gc import collect_garbage, sweep_uploads
from registry.metadata.factory import open_store
from registry.metrics import Metrics, metrics_handler
from registry.middleware import authenticate_v2, observe
from registry.oci.routes import setup_routes
from registry.pull_protection import PullProtection
from registry.storage.factory import open_blob_store
from scanner import service as scanner_service

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(config: Config, **overrides: Any) -> web.Application:
    """Build the aiohttp application for ``config``.

    ``overrides`` replace wired components by key name (``blobs``, ``metadata``,
    ``authorizer``, ``metrics``) — tests use it to inject fakes behind the protocols.
    """
    app = web.Application(middlewares=[observe, authenticate_v2], client_max_size=config.limits.manifest_max_bytes + 1)
    app[CONFIG] = config
    ensure_data_dir(config.data_dir)
    app[METRICS] = overrides.pop("metrics", None) or Metrics()
    app[METADATA] = overrides.pop("metadata", None) or open_store(config)
    app[BLOBS] = overrides.pop("blobs", None) or open_blob_store(config, app[METADATA])
    app[BLOB_CACHE] = BlobCache(config.limits.small_blob_cache_bytes,
                                on_corrupt=_count_corruption(app[METRICS], "cache"))
    app[PULL_PROTECTION] = PullProtection(app[METADATA])
    app[JOBS_QUEUED] = []  # filled by the background workers as they start
    app[NODE] = Node(app[METADATA], interval=config.nodes.heartbeat_seconds,
                     timeout=config.nodes.timeout_seconds)
    app[UPLOAD_ACTIVITY] = UploadActivity()
    authorizer = overrides.pop("authorizer", None)
    if config.auth.enabled:
        _wire_auth(app, config)
    app[AUTHORIZER] = authorizer or app.get(AUTHORIZER) or AllowAll()
    if overrides:
        raise TypeError(f"unknown overrides: {sorted(overrides)}")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics_handler, name="metrics")
    app.router.add_post("/", api_endpoint, name="api")
    # The Basic challenge's realm is this URL: token-fetching clients (oras-py) ask it.
    app.router.add_get("/", registry_token, name="registry_token")
    setup_routes(app)
    # First in, last out: the node heartbeats until every worker has stopped.
    app.cleanup_ctx.append(_heartbeat)
    app.cleanup_ctx.append(_maintenance)
    # The composition root may know every package: the scan and webhook workers are wired
    # here so that one factory still builds the whole server.
    scanner_service.setup(app)
    app.on_cleanup.append(_close_stores)
    return app


def _wire_auth(app: web.Application, config: Config) -> None:
    """Identities, tokens, policy evaluation: what makes Berth a private ECR."""
    # [keys]: the same key file on every node, so that any node opens the secrets another
    # sealed and verifies the tokens another signed.
    master_keys = load_master_keys(config)
    # The app's own metadata store, whichever backend it is: every node sees the same users.
    identities = Identities(app[METADATA], SecretBox(master_keys))
    credentials = CredentialCache(identities)
    tokens = token_signer(master_keys)
    policy_dir = PolicyDirectory(config.auth.policy_dir) if config.auth.policy_dir else None
    if policy_dir is not None:
        _reload_policy_files(policy_dir)
    app[IDENTITIES] = identities
    app[TOKENS] = tokens
    app[AUTHENTICATOR] = Authenticator(credentials=credentials, tokens=tokens,
                                       region=config.region)
    app[AUTHORIZER] = PolicyAuthorizer(metadata=app[METADATA], credentials=credentials,
                                       policy_dir=policy_dir)
    if policy_dir is not None:
        app.cleanup_ctx.append(_policy_reloader(policy_dir, config.auth.policy_reload_seconds))


def _reload_policy_files(policy_dir: PolicyDirectory) -> None:
    """Re-read the policy directory and log its problems; never raises.

    Bad files are reported and skipped by ``reload()`` itself; anything else going wrong is
    logged here, so the server still starts and the reload loop lives on to see the next
    good change.
    """
    try:
        problems = policy_dir.reload()
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("policy directory reload failed",
                      extra={"directory": str(policy_dir.path)})
        return
    for problem in problems:
        log.warning("invalid identity policy file", extra={"problem": problem})


def _policy_reloader(policy_dir: PolicyDirectory, interval: float):
    async def reloader(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                # Never raises: the loop lives on to see the next good change.
                await asyncio.get_running_loop().run_in_executor(
                    None, _reload_policy_files, policy_dir)

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    return reloader


async def _close_stores(app: web.Application) -> None:
    await app[METADATA].close()


def _count_corruption(metrics: Metrics, source: str):
    def count(digest: str) -> None:
        metrics.blob_corruptions.labels(source=source).inc()

    return count


async def _heartbeat(app: web.Application) -> AsyncIterator[None]:
    """Register this process as a node and keep it alive; each beat also replays the jobs of
    nodes that stopped beating (a process killed mid-job, here or on another machine)."""
    node = app[NODE]
    try:
        await node.beat()
    except Exception:  # the database may come up later: the loop keeps trying
        log.exception("node registration failed", extra={"node": node.id})
    task = asyncio.create_task(node.run())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await node.stop()


async def _maintenance(app: web.Application) -> AsyncIterator[None]:
    """Periodic GC, stale-upload cleanup and scrub; across workers one holder of each lease
    runs."""
    config = app[CONFIG]
    tasks = [asyncio.create_task(_every(
        app, "uploads", config.uploads.cleanup_interval_seconds,
        lambda: sweep_uploads(app[BLOBS], max_age_seconds=config.uploads.stale_after_seconds)))]
    if config.gc.enabled and config.gc.interval_seconds > 0:
        tasks.append(asyncio.create_task(_every(
            app, "gc", config.gc.interval_seconds,
            lambda: collect_garbage(app[METADATA], app[BLOBS],
                                    grace_seconds=config.gc.grace_seconds,
                                    upload_max_age_seconds=config.uploads.stale_after_seconds))))
    stop = threading.Event()
    scrubber = None
    if config.storage.scrub_interval_seconds > 0:
        scrubber = _scrub_task(app, stop)
        tasks.append(scrubber)
    yield
    stop.set()  # a running scrub pass ends at its next block
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _scrub_task(app: web.Application, stop: threading.Event) -> asyncio.Task:
    from registry.integrity.scrub import lower_priority, scrub_pass

    config = app[CONFIG]
    loop = asyncio.get_running_loop()
    cache = app[BLOB_CACHE]
    # A thread of its own: its lowered priority must not leak into shared pool threads.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrub",
                                  initializer=lower_priority)

    def job() -> None:
        scrub_pass(app[METADATA], app[BLOBS], rate=config.storage.scrub_bytes_per_second,
                   metrics=app[METRICS], stop=stop,
                   evict=lambda digest: loop.call_soon_threadsafe(cache.evict, digest))

    task = asyncio.create_task(_every(app, "scrub", config.storage.scrub_interval_seconds,
                                      job, executor=executor))
    task.add_done_callback(lambda _: executor.shutdown(wait=False))
    return task


async def _every(app: web.Application, name: str, interval: float, job, *,
                 executor: ThreadPoolExecutor | None = None) -> None:
    if interval <= 0:
        return
    metadata = app[METADATA]
    owner = app[NODE].id  # a dead node's named leases end with it (Node.beat)
    ttl = max(interval * 1.5, 3.0)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            if not await metadata.acquire_lease(name, owner, ttl=ttl):
                continue
            running = loop.run_in_executor(executor, job)
            # Renew the lease while a long pass (a scrub of a big store) runs, so no other
            # worker starts a second one beside it.
            while not (await asyncio.wait({running}, timeout=ttl / 3))[0]:
                await metadata.acquire_lease(name, owner, ttl=ttl)
            running.result()
        except Exception:
            log.exception("maintenance pass failed", extra={"job": name})
