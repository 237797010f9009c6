"""Webhooks: registry events as signed JSON POSTs shaped like ECR's EventBridge events.

Flow: an outbox fact ("image.pushed", "image.deleted", "image.scanned") -> ``WebhookSubscriber``
(in the fan-out transaction) renders the EventBridge event(s) (ecr-api.md §10) once and creates
one ``webhook.deliver`` job per matching endpoint -> a Worker runs ``WebhookDeliverer`` -> every
attempt is recorded in ``webhook_deliveries`` / ``webhook_attempts`` (``DeliveryLog``).

Wire contract for receivers::

    POST <url>
    Content-Type: application/json
    X-Berth-Event-Id: <EventBridge "id">      same on every retry: deduplicate on it
    X-Berth-Delivery-Id: <uuid>               one per (event, endpoint)
    X-Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

Verify like Stripe's scheme (``verify_signature``): recompute the HMAC over the raw body bytes,
compare in constant time, and reject timestamps older than a tolerance to stop replays. A
header may carry several ``v1=`` values (secret rotation); any match passes.

Delivery is at-least-once and unordered: 2xx is delivered; 4xx other than 408/429 is
permanent (the receiver refused this body, resending cannot help); anything else, timeouts and
network errors are retried with backoff. Redirects are not followed. Secrets never reach the
database or the logs; endpoints are named, and URLs are stored without userinfo or query.

Destinations must be public addresses: a URL whose host is, or resolves to, a loopback,
link-local, private, unspecified, multicast or reserved address (``registry.addresses``) is
refused for good, the reason recorded in the delivery log, unless its endpoint sets
``allow_private_network = true``. Names are vetted on the resolved addresses, which are the
ones connected to (``registry.outbound.PublicAddressResolver``), so DNS rebinding cannot pass.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from registry.events import (
    IMAGE_DELETED, IMAGE_PUSHED, IMAGE_SCANNED, Job, JobSpec, LoggedEvent, PermanentError,
    RetryableError,
)
from registry.outbound import PublicAddressResolver, RefusedAddress, check_url_host
from scanner.webhook_log import (
    DELIVER_JOB, Attempt, Delivery, DeliveryLog, DeliveryStatus,
)

log = logging.getLogger(__name__)

IMAGE_ACTION = "ECR Image Action"
IMAGE_SCAN = "ECR Image Scan"
DETAIL_TYPES = (IMAGE_ACTION, IMAGE_SCAN)
SIGNATURE_HEADER = "X-Berth-Signature"
EVENT_ID_HEADER = "X-Berth-Event-Id"
DELIVERY_ID_HEADER = "X-Berth-Delivery-Id"
PRIORITY = 0  # webhook jobs run on their own Worker; priority only orders them among themselves


@lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern))


def repository_matches(filters: Sequence[str], name: str) -> bool:
    """ECR WILDCARD filters: ``*`` is any run of characters, the match is anchored."""
    return any(_wildcard(f).fullmatch(name) for f in filters)


def redact_url(url: str) -> str:
    """The URL without userinfo, query or fragment: what may be stored and shown."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str = field(repr=False)  # may embed a token; show ``redact_url(url)`` instead
    secret: str = field(repr=False)
    events: frozenset[str] = frozenset(DETAIL_TYPES)
    repositories: tuple[str, ...] = ("*",)
    timeout: float = 10.0
    # Opt-in to loopback/private/link-local destinations (a receiver on this host or LAN).
    allow_private_network: bool = False

    def wants(self, detail_type: str, repository: str) -> bool:
        return detail_type in self.events and repository_matches(self.repositories, repository)

    @classmethod
    def from_config(cls, entry: Any) -> "Endpoint":
        """From a ``[[webhooks]]`` config entry (url, name, secret | secret_file, events,
        repositories, timeout_seconds, allow_private_network).

        Raises:
            ValueError: the secret file cannot be read or is empty.
        """
        secret = getattr(entry, "secret", "") or ""
        secret_file = getattr(entry, "secret_file", "") or ""
        if secret_file:
            try:
                secret = Path(secret_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"webhook secret_file {secret_file}: {exc.strerror}") from None
        if not secret:
            raise ValueError(f"webhook {entry.url!r}: empty secret")
        return cls(name=getattr(entry, "name", "") or redact_url(entry.url), url=entry.url,
                   secret=secret, events=frozenset(getattr(entry, "events", DETAIL_TYPES)),
                   repositories=tuple(getattr(entry, "repositories", ("*",))),
                   timeout=float(getattr(entry, "timeout_seconds", 10.0)),
                   allow_private_network=bool(getattr(entry, "allow_private_network", False)))


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def eventbridge_events(event: LoggedEvent, *, region: str,
                       new_id: Callable[[], str] = lambda: str(uuid.uuid4())
                       ) -> list[dict[str, Any]]:
    """The EventBridge events ECR would emit for an outbox fact (ecr-api.md §10).

    A push with several tags is one event per tag, as ECR emits one per PutImage tag; a push
    by digest only has no ``image-tag``. Facts with no ECR counterpart yield nothing.
    """
    p = event.payload
    account, repository = p["account"], p["repository"]

    def envelope(detail_type: str, resources: list[str], detail: dict[str, Any]) -> dict:
        return {"version": "0", "id": new_id(), "detail-type": detail_type,
                "source": "aws.ecr", "account": account, "time": _iso(event.created_at),
                "region": region, "resources": resources, "detail": detail}

    def action(kind: str, tag: str | None) -> dict[str, Any]:
        detail = {"result": "SUCCESS", "repository-name": repository}
        if p.get("digest"):
            detail["image-digest"] = p["digest"]
        detail["action-type"] = kind
        if tag:
            detail["image-tag"] = tag
        return envelope(IMAGE_ACTION, [], detail)

    if event.kind == IMAGE_PUSHED:
        return [action("PUSH", tag) for tag in (p.get("tags") or [None])]
    if event.kind == IMAGE_DELETED:
        return [action("DELETE", p.get("tag"))]
    if event.kind == IMAGE_SCANNED:
        detail: dict[str, Any] = {"scan-status": p["status"], "repository-name": repository}
        if p["status"] == "COMPLETE":
            detail["finding-severity-counts"] = {
                k: v for k, v in (p.get("severityCounts") or {}).items() if v}
        detail["image-digest"] = p["digest"]
        detail["image-tags"] = list(p.get("tags") or [])
        arn = f"arn:aws:ecr:{region}:{account}:repository/{repository}"
        return [envelope(IMAGE_SCAN, [arn], detail)]
    return []


class WebhookSubscriber:
    """Fan-out subscriber: one ``webhook.deliver`` job per (EventBridge event, endpoint).

    The body is rendered here, once, so every retry sends the same bytes and event id.
    """

    def __init__(self, endpoints: Iterable[Endpoint], *, region: str) -> None:
        self.endpoints = tuple(endpoints)
        self.region = region

    def __call__(self, event: LoggedEvent) -> list[JobSpec]:
        if not self.endpoints:
            return []
        jobs = []
        for rendered in eventbridge_events(event, region=self.region):
            repository = rendered["detail"]["repository-name"]
            for endpoint in self.endpoints:
                if endpoint.wants(rendered["detail-type"], repository):
                    jobs.append(JobSpec(DELIVER_JOB, {"delivery": str(uuid.uuid4()),
                                                      "endpoint": endpoint.name,
                                                      "event": rendered}, PRIORITY))
        return jobs


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Berth-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance: float = 300.0,
                     now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within
    ``tolerance`` seconds of ``now``. Malformed headers are simply not valid."""
    stamp, signatures = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if stamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = sign(secret, body, stamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, s) for s in signatures)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class _Sent:
    """What one attempt got back."""

    status: int | None
    error: str | None
    retry_after: float | None
    duration_ms: float
    started_at: float
    refused: bool = False  # the destination is not a public address: never retried


def classify(status: int | None) -> Outcome:
    """What an HTTP answer means for the delivery; ``None`` is a network error or timeout."""
    if status is not None and 200 <= status < 300:
        return Outcome.DELIVERED
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return Outcome.PERMANENT
    return Outcome.RETRY


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # the HTTP-date form is rare for webhooks; backoff covers it


class WebhookDeliverer:
    """The ``webhook.deliver`` job handler.

    Endpoints (with their secrets) come from the current configuration, looked up by name; a
    job for an endpoint no longer configured fails permanently. Two HTTP sessions are opened on
    first use: one whose resolver admits only public addresses, and one for the endpoints that
    set ``allow_private_network``. ``resolver`` replaces the name lookup under both (tests map
    names to chosen addresses); the vetting stays. ``close()`` releases the sessions.

    Raises:
        ValueError: (constructor) two endpoints share a name.
    """

    def __init__(self, endpoints: Iterable[Endpoint], deliveries: DeliveryLog, *,
                 resolver: AbstractResolver | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        listed = tuple(endpoints)
        self.endpoints = {e.name: e for e in listed}
        if len(self.endpoints) != len(listed):
            raise ValueError("webhook endpoint names must be unique")
        self.deliveries = deliveries
        self.resolver = resolver
        self.clock = clock
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def _session(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        private = endpoint.allow_private_network
        session = self._sessions.get(private)
        if session is None:
            inner = self.resolver or aiohttp.ThreadedResolver()
            resolver = inner if private else PublicAddressResolver(inner)
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))
            self._sessions[private] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def __call__(self, job: Job) -> None:
        """Raises:
            PermanentError: refused (4xx but 408/429), the destination is not a public
                address (without opt-in), or the endpoint is gone.
            RetryableError: 408, 429, 5xx, 3xx, timeout or network error.
        """
        endpoint = self.endpoints.get(job.payload["endpoint"])
        if endpoint is None:
            await self.deliveries.record(job, url="", status=None, now=self.clock(),
                                         duration_ms=0.0, error="endpoint not configured")
            raise PermanentError("endpoint not configured")
        sent = await self._post(endpoint, job)
        outcome = Outcome.PERMANENT if sent.refused else classify(sent.status)
        await self.deliveries.record(job, url=redact_url(endpoint.url), status=sent.status,
                                     now=sent.started_at, duration_ms=sent.duration_ms,
                                     error=sent.error, delivered=outcome is Outcome.DELIVERED)
        if outcome is Outcome.DELIVERED:
            return
        reason = sent.error or f"HTTP {sent.status}"
        if outcome is Outcome.PERMANENT:
            raise PermanentError(reason)
        raise RetryableError(reason, retry_after=sent.retry_after)

    async def _post(self, endpoint: Endpoint, job: Job) -> _Sent:
        event = job.payload["event"]
        body = encode(event)
        now = self.clock()
        headers = {"Content-Type": "application/json", "User-Agent": "Berth-Webhooks/1",
                   EVENT_ID_HEADER: event["id"], DELIVERY_ID_HEADER: job.payload["delivery"],
                   SIGNATURE_HEADER: sign(endpoint.secret, body, int(now))}
        started = time.monotonic()
        status = error = retry_after = None
        refused = False
        try:
            if not endpoint.allow_private_network:
                check_url_host(endpoint.url)  # literals never reach the resolver
            async with self._session(endpoint).post(
                    endpoint.url, data=body, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=endpoint.timeout)) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                await response.content.read(64 * 1024)  # drain a little; bodies are ignored
        except RefusedAddress as exc:
            error, refused = str(exc), True
        except asyncio.TimeoutError:
            error = f"timeout after {endpoint.timeout:g}s"
        except aiohttp.ClientError as exc:
            # Only the class and the OS error: some ClientErrors' text embeds the URL, and a
            # URL may carry a token. A refused address is the resolver's verdict, in its words.
            os_error = getattr(exc, "os_error", None)
            if isinstance(os_error, RefusedAddress):
                error, refused = str(os_error), True
            else:
                error = type(exc).__name__ + (f": {os_error}" if os_error else "")
        duration_ms = (time.monotonic() - started) * 1000
        log.info("webhook attempt", extra={"endpoint": endpoint.name, "job": job.id,
                                           "attempt": job.attempts, "status": status,
                                           "error": error, "refused": refused,
                                           "duration_ms": round(duration_ms, 1)})
        return _Sent(status, error, retry_after, duration_ms, now, refused)


__all__ = ["DELIVER_JOB", "DETAIL_TYPES", "IMAGE_ACTION", "IMAGE_SCAN", "Attempt", "Delivery",
           "DeliveryLog", "DeliveryStatus", "Endpoint", "Outcome", "WebhookDeliverer",
           "WebhookSubscriber", "classify", "eventbridge_events", "redact_url",
           "repository_matches", "sign", "verify_signature"]
