"""Typed writes that ride along in another operation's transaction.

A push records a manifest and, in the same transaction, may queue a scan and mark the image
"scan requested"; a scan request from ECR queues its job with the status change. Callers say
*what* to write with these values; the store knows *how* (``apply``). No connection object
ever leaves the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from registry.metadata.database import Conn


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to queue. ``idempotency_key``: at most one job per (kind, key) ever exists, so
    the same cause (an event, a request) never yields two jobs of one kind."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    available_at: float | None = None
    idempotency_key: str | None = None
    source_event: int | None = None


@dataclass(frozen=True, slots=True)
class RequestScan:
    """Mark an image's scan requested (status IN_PROGRESS) unless one is already running,
    and queue ``job`` with it."""

    repository_id: int
    digest: str
    job: NewJob
    scan_type: str = "BASIC"


Write = NewJob | RequestScan

_APPLIERS: dict[type, Callable[[Conn, Any, float], Any]] = {}


def applier(kind: type) -> Callable[[Callable[[Conn, Any, float], Any]], Callable]:
    """Register how one kind of write is applied (by the module owning its table)."""
    def register(fn: Callable[[Conn, Any, float], Any]) -> Callable[[Conn, Any, float], Any]:
        _APPLIERS[kind] = fn
        return fn

    return register


def apply(conn: Conn, writes: Sequence[Write], *, now: float) -> list[Any]:
    """Apply ``writes`` inside the caller's transaction, in order; return each result."""
    return [_APPLIERS[type(w)](conn, w, now) for w in writes]
