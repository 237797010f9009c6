"""Prometheus metrics: requests and latency by route, bytes in and out, open uploads,
blob integrity (corruptions found, scrub progress) and refused upload sessions.

With ``--workers N`` the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before
any worker starts, and ``/metrics`` aggregates every process.
"""

from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
)
from prometheus_client import multiprocess

from registry.appkeys import METRICS


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        # In multiprocess mode values live in mmap files; metrics register globally.
        target = None if self.multiprocess else self.registry
        kwargs = {"registry": target} if target is not None else {}
        self.requests = Counter("berth_http_requests_total", "HTTP requests",
                                ["route", "method", "status"], **kwargs)
        self.latency = Histogram("berth_http_request_duration_seconds",
                                 "HTTP request latency", ["route", "method"],
                                 buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25,
                                          .5, 1, 2.5, 5, 10, 30, 60), **kwargs)
        self.bytes_in = Counter("berth_http_bytes_received_total",
                                "Request body bytes received for uploads", **kwargs)
        self.bytes_out = Counter("berth_http_bytes_sent_total",
                                 "Response body bytes sent", **kwargs)
        gauge_kwargs = dict(kwargs)
        if self.multiprocess:
            gauge_kwargs["multiprocess_mode"] = "livesum"
        self.uploads_in_progress = Gauge("berth_uploads_in_progress",
                                         "Upload requests being received", **gauge_kwargs)
        # source: "cache" (bytes read for the small-blob cache) or "scrub".
        self.blob_corruptions = Counter("berth_blob_corruptions_found_total",
                                        "Stored blobs found not to hash to their digest",
                                        ["source"], **kwargs)
        self.scrub_bytes = Counter("berth_scrub_bytes_total",
                                   "Blob bytes re-hashed by the periodic scrub", **kwargs)
        last_kwargs = dict(kwargs)
        if self.multiprocess:
            last_kwargs["multiprocess_mode"] = "max"
        self.scrub_completed = Gauge("berth_scrub_last_completed_timestamp_seconds",
                                     "When the last full scrub pass ended (Unix time)",
                                     **last_kwargs)
        self.uploads_refused = Counter("berth_upload_sessions_refused_total",
                                       "Upload sessions refused by a cap on open sessions",
                                       ["scope"], **kwargs)

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


async def metrics_handler(request: web.Request) -> web.Response:


    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
