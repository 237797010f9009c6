"""Request middleware: request ids, metrics, and the one place errors meet the wire.

Handlers raise typed errors (``OCIError``, ``ECRError``); this module renders them. Unknown
exceptions become a 500 with a logged traceback and no internals in the body, in the shape of
the API the client speaks: ``{"__type": "ServerException"}`` with ``x-amzn-RequestId`` for the
AWS JSON API at ``POST /``, ``{"errors": [...]}`` for /v2/. A client that disconnects
mid-request is logged as one warning line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import itertools
import json
import logging
import time
import uuid

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestPayloadError

from registry.api import check_api_path, is_api_request
from registry.appkeys import AUTHENTICATOR, METRICS
from registry.auth.principal import ANONYMOUS
from registry.ecr.errors import ECRError, SerializationException, ServerException
from registry.http_limits import ClientDisconnected
from registry.metadata.errors import StoreBusyError, StoreError
from registry.storage.base import StorageUnavailableError
from registry.oci.errors import NameUnknown, OCIError, Unavailable, Unsupported

log = logging.getLogger(__name__)
audit_log = logging.getLogger("registry.audit")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_JSON = "application/json; charset=utf-8"
_API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


_REQUEST_PREFIX = uuid.uuid4().hex[:12]
_request_counter = itertools.count(1)


def _next_request_id() -> str:
    """Unique per process start and request; cheaper than a uuid4 per request."""
    return f"{_REQUEST_PREFIX}{next(_request_counter):012x}"


def render_oci(error: OCIError) -> web.Response:
    body = json.dumps(error.body(), separators=(",", ":")).encode()
    headers = {**_API_VERSION, **error.headers, "Content-Type": _JSON}
    return web.Response(status=error.status, body=body, headers=headers)


def render_ecr(error: ECRError, request_id: str) -> web.Response:
    return web.Response(status=error.status, body=json.dumps(error.body()).encode(),
                        headers={"Content-Type": "application/x-amz-json-1.1",
                                 "x-amzn-RequestId": request_id})


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    return getattr(route, "name", None) or "unmatched"


@web.middleware
async def observe(request: web.Request, handler) -> web.StreamResponse:
    """Assign a request id, translate errors, count and time the request."""
    request_id = request.headers.get("X-Request-Id") or _next_request_id()
    if len(request_id) > 128:
        request_id = _next_request_id()
    request_id_var.set(request_id)
    request["request_id"] = request_id
    started = time.perf_counter()
    response = await _render_errors(request, handler)
    if request.method not in _READ_METHODS or "ecr_operation" in request:
        _audit(request, response)
    response.headers["X-Request-Id"] = request_id
    if request.path.startswith("/v2"):
        response.headers.setdefault("Docker-Distribution-API-Version", "registry/2.0")
    metrics = request.app[METRICS]
    route = _route_name(request)
    metrics.requests.labels(route, request.method, str(response.status)).inc()
    metrics.latency.labels(route, request.method).observe(time.perf_counter() - started)
    return response


async def _render_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        check_api_path(request)
        return await handler(request)
    except OCIError as error:
        return render_oci(error)
    except ECRError as error:
        return render_ecr(error, _aws_request_id(request))
    except StoreError as error:
        return _render_unavailable(request, error, f"metadata store: {error.reason}")
    except StorageUnavailableError as error:
        return _render_unavailable(request, error, f"blob storage: {error.reason}")
    except web.HTTPException as exc:
        if not request.path.startswith("/v2"):
            raise
        if exc.status == 404:
            return render_oci(NameUnknown("not found"))
        if exc.status == 405:
            return render_oci(Unsupported("method not allowed"))
        raise
    except _CLIENT_GONE as exc:
        # Routine: a client closing its connection mid-request is one line, not a traceback.
        # The body readers already logged what they saw; this catches anything else.
        log.warning("client disconnected", extra={
            "request_id": request_id_var.get(), "route": _route_name(request),
            "error": exc.__class__.__name__})
        return _render_unexpected(request, status=400, message="request body incomplete")
    except asyncio.CancelledError:
        # The handler was cancelled (its client went away with handler cancellation on, or
        # the server is stopping): say so once, and let the cancellation go on.
        log.warning("request cancelled", extra={"request_id": request_id_var.get(),
                                                "route": _route_name(request)})
        raise
    except Exception as error:
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return _render_unavailable(request, error, "blob storage: disk full")
        log.exception("unhandled error", extra={
            "request_id": request_id_var.get(), "route": _route_name(request),
            "aws_request_id": request.get("aws_request_id", "-")})
        return _render_unexpected(request, status=500, message="internal error")


# The request's own connection died under a reader. Not ConnectionResetError in general: a
# backend connection (a database, a webhook) failing is the server's fault, a 500.
_CLIENT_GONE = (ClientDisconnected, RequestPayloadError)


# Storage that cannot take more bytes: the same answer as a full metadata database.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _render_unavailable(request: web.Request, error: Exception, reason: str) -> web.Response:
    """The one place store failures meet the wire: a 5xx whose message says why (the
    operator's "disk full" reaches the client), in the shape of the API the client speaks.
    OCI: 503 ``UNAVAILABLE`` (retryable); ECR: ``ServerException`` (HTTP 500)."""
    log.error("storage unavailable", extra={
        "request_id": request_id_var.get(), "route": _route_name(request), "reason": reason,
        "error": type(error).__name__})
    message = f"temporarily unable to store or read: {reason}"
    if is_api_request(request) or _route_name(request) == "api":
        return render_ecr(ServerException(message), _aws_request_id(request))
    retry = "1" if isinstance(error, StoreBusyError) else \
        "5" if isinstance(error, StorageUnavailableError) else "30"
    return render_oci(Unavailable(message, headers={"Retry-After": retry}))


def _aws_request_id(request: web.Request) -> str:
    request_id = request.get("aws_request_id")
    if request_id is None:
        request_id = request["aws_request_id"] = str(uuid.uuid4())
    return request_id


def _render_unexpected(request: web.Request, *, status: int, message: str) -> web.Response:
    """An error no handler chose, in the shape of the API the client speaks."""
    if is_api_request(request) or _route_name(request) == "api":
        request_id = _aws_request_id(request)
        error = (ServerException if status >= 500 else SerializationException)(
            f"{message} (request id {request_id})")
        return render_ecr(error, request_id)
    body = json.dumps({"errors": [{"code": "UNKNOWN" if status >= 500 else "SIZE_INVALID",
                                   "message": message}]})
    return web.Response(status=status, text=body, content_type="application/json",
                        headers=_API_VERSION)


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_OPERATIONS = ("Describe", "Get", "List", "BatchGet", "BatchCheck")


def _audit(request: web.Request, response: web.StreamResponse) -> None:
    """One audit line per mutating request (denials are logged where they are decided)."""
    operation = request.get("ecr_operation")
    if operation is not None and operation.startswith(_READ_OPERATIONS):
        return
    verdicts = request.get("verdicts") or []
    if any(not verdict.allowed for _, verdict in verdicts):
        return  # already logged as a denial
    principal = request.get("principal")
    audit_log.info("request", extra={
        "principal": getattr(principal, "arn", "anonymous"),
        "actions": [access.action for access, _ in verdicts],
        "resources": sorted({access.resource for access, _ in verdicts}),
        "decision": "allowed" if verdicts else "unauthorized",
        "statements": [s for _, v in verdicts for s in v.statements],
        "status": response.status, "source_ip": request.remote,
        "request_id": request.get("request_id", "-")})


@web.middleware
async def authenticate_v2(request: web.Request, handler) -> web.StreamResponse:
    """Establish the caller of a /v2/ request (anonymous when it sent no credentials)."""
    authenticator = request.app.get(AUTHENTICATOR)
    if authenticator is not None and request.path.startswith("/v2"):
        principal = await authenticator.registry(request)
        if principal is None:
            if request.path == "/v2/" or request.path == "/v2":
                raise authenticator.challenge(request, "Not Authorized")
            principal = ANONYMOUS
        request["principal"] = principal
    return await handler(request)


_SENSITIVE_QUERY = ("signature", "token", "credential", "password", "secret", "_state",
                    "x-amz-security-token")


def redact_path(path_qs: str) -> str:
    """Drop values of query parameters that may carry secrets."""
    path, sep, query = path_qs.partition("?")
    if not sep:
        return path
    parts = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        if any(word in key.lower() for word in _SENSITIVE_QUERY):
            parts.append(f"{key}{eq}REDACTED")
        else:
            parts.append(item)
    return f"{path}?{'&'.join(parts)}"


class AccessLogger(AbstractAccessLogger):
    """One structured line per request; never headers, bodies or credentials.

    ``metrics`` is bound by ``access_logger_for`` so bytes sent are counted even for
    responses aiohttp produced itself (no matched route, no app on the request).
    """

    metrics = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if self.metrics is not None:
            self.metrics.bytes_out.inc(response.body_length)
        if not self.logger.isEnabledFor(logging.INFO):
            return
        self.logger.info(
            "request", extra={
                "remote": request.remote, "method": request.method,
                "path": redact_path(request.path_qs), "status": response.status,
                "bytes": response.body_length, "duration_ms": round(time * 1000, 2),
                "request_id": response.headers.get("X-Request-Id", "-"),
            })


def access_logger_for(metrics) -> type[AccessLogger]:
    return type("BoundAccessLogger", (AccessLogger,), {"metrics": metrics})
