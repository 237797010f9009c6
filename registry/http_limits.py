"""Reading request bodies under limits: an idle timeout between bytes, a size cap, and one
log line when a client goes away mid-body.

Every reader of a request body (blob upload PATCH/PUT, manifest PUT, the ECR JSON endpoint)
goes through ``iter_body``, so a client that announces a body and then stalls cannot hold a
handler, a connection or a buffer beyond ``[server] body_timeout_seconds``. The exceptions
here are protocol-neutral; each API's reader turns them into its own error (OCI
``SIZE_INVALID``, ECR ``RequestTimeoutException``...).
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

log = logging.getLogger(__name__)


class BodyReadError(Exception):
    """The request body could not be read to its end."""


class BodyTimeout(BodyReadError):
    """No byte of the body arrived for ``idle_timeout`` seconds."""

    def __init__(self, idle_timeout: float) -> None:
        super().__init__(f"no body bytes received for {idle_timeout:g} seconds")
        self.idle_timeout = idle_timeout


class ClientDisconnected(BodyReadError):
    """The client closed the connection (or broke the framing) before the body ended."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"client went away mid-body ({cause.__class__.__name__})")


class BodyTooLarge(BodyReadError):
    """The body (announced or received) is longer than the reader accepts."""

    def __init__(self, limit: int, size: int | None) -> None:
        what = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"request body of {what} exceeds the limit of {limit} bytes")
        self.limit = limit
        self.size = size


# What aiohttp raises from a payload whose connection died or whose framing broke.
_GONE = (ConnectionError, EOFError, HttpProcessingError, RequestPayloadError)


async def iter_body(request: web.Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive.

    Raises:
        BodyTimeout: nothing arrived for ``idle_timeout`` seconds.
        ClientDisconnected: the connection closed or the framing broke before the end.
    """
    received = 0
    while chunk := await _next_chunk(request, idle_timeout, received):
        received += len(chunk)
        yield chunk


async def _next_chunk(request: web.Request, idle_timeout: float, received: int) -> bytes:
    """The next piece of the body, b"" at its end (raises as ``iter_body``)."""
    content = request.content
    try:
        # What already arrived needs no timer: small bodies come with their head, and a
        # timer per chunk is most of the cost of reading them.
        chunk = content.read_nowait()
        if chunk or content.at_eof():
            return chunk
        # The timeout covers the wait for bytes only, never the consumer's work between
        # chunks (a disk write under backpressure is not the client's stall).
        async with asyncio.timeout(idle_timeout):
            return await content.readany()
    except TimeoutError:
        _log_interrupted(request, "body_timeout", received)
        raise BodyTimeout(idle_timeout) from None
    except _GONE as exc:
        _log_interrupted(request, "client_disconnected", received)
        raise ClientDisconnected(exc) from None


def declared_length(request: web.Request) -> int | None:
    """The Content-Length header as a number (aiohttp's parser already refused bad ones)."""
    value = request.headers.get("Content-Length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


async def read_body(request: web.Request, *, limit: int, idle_timeout: float) -> bytes:
    """The whole body, refused before reading when it announces more than ``limit`` bytes
    and as soon as more than ``limit`` arrive (chunked bodies announce nothing).

    Raises:
        BodyTooLarge: over ``limit``.
        BodyTimeout, ClientDisconnected: as ``iter_body``.
    """
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit, declared)
    body = bytearray()
    while chunk := await _next_chunk(request, idle_timeout, len(body)):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit, None)
    return bytes(body)


def _log_interrupted(request: web.Request, reason: str, received: int) -> None:
    """One line per interrupted body: a client going away is routine, not a traceback."""
    route = getattr(request.match_info.route, "name", None) or "unmatched"
    log.warning("request body interrupted", extra={
        "reason": reason, "request_id": request.get("request_id", "-"), "route": route,
        "method": request.method, "bytes_received": received})
