"""``POST /`` with ``X-Amz-Target``: the ECR JSON 1.1 endpoint.

Order of checks, as AWS does it, with the body read as late and as little as possible:

1. the target names an operation Berth implements;
2. the SigV4 header checks out without the body (parse, clock, scope, ``host``,
   ``x-amz-target`` and ``content-type`` signed, an active access key), so an unsigned or
   unknown caller never makes the server read, let alone buffer, its body;
3. the body is read up to the operation's limit (``body_limits``), refused up front when its
   Content-Length is larger, with ``[server] body_timeout_seconds`` between bytes;
4. the signature over the body checks out;
5. the JSON body parses, the input satisfies the model's constraints, then the operation runs
   (and authorizes its own action on its own resource).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Awaitable, Callable

from aiohttp import web

from registry.appkeys import AUTHENTICATOR, CONFIG
from registry.auth.principal import Principal
from registry.ecr import ops_images, ops_layers, ops_registry, ops_repositories, ops_scanning
from registry.ecr.body_limits import body_limit
from registry.ecr.call import ECRCall
from registry.ecr.errors import (
    RequestBodyTooLarge, RequestTimeoutException, SerializationException,
    UnknownOperationException,
)
from registry.ecr.validate import load_params, validator
from registry.http_limits import BodyTimeout, BodyTooLarge, ClientDisconnected, read_body

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
CONTENT_TYPE = "application/x-amz-json-1.1"
# What a JSON 1.1 signature must cover besides host: which operation runs, and how the body
# is read. AWS refuses requests signed without them as it refuses an unsigned host.
REQUIRED_SIGNED_HEADERS = ("Content-Type", "X-Amz-Target")

Operation = Callable[[ECRCall], Awaitable[dict[str, Any]]]
OPERATIONS: dict[str, Operation] = {
    **ops_repositories.OPERATIONS, **ops_images.OPERATIONS, **ops_layers.OPERATIONS,
    **ops_registry.OPERATIONS, **ops_scanning.OPERATIONS,
}


def _operation(target: str) -> tuple[str, Operation]:
    operation = target[len(TARGET_PREFIX):]
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise UnknownOperationException(
            f"Berth does not implement the ECR operation {operation[:120]!r}")
    return operation, handler


async def _read(request: web.Request, operation: str) -> bytes:
    """The body, within the operation's limit.

    Raises:
        RequestBodyTooLarge, RequestTimeoutException, SerializationException.
    """
    try:
        return await read_body(request, limit=body_limit(operation),
                               idle_timeout=request.app[CONFIG].server.body_timeout_seconds)
    except BodyTooLarge as exc:
        raise RequestBodyTooLarge(f"{exc} for {operation}") from None
    except BodyTimeout as exc:
        raise RequestTimeoutException(f"Request body incomplete: {exc}") from None
    except ClientDisconnected as exc:
        raise SerializationException(f"Request body incomplete: {exc}") from None


async def ecr_endpoint(request: web.Request) -> web.Response:
    request_id = str(uuid.uuid4())
    request["aws_request_id"] = request_id
    operation, handler = _operation(request.headers.get("X-Amz-Target", ""))
    authenticator = request.app.get(AUTHENTICATOR)
    if authenticator is None:  # authorization off: the default account's root
        account = request.app[CONFIG].default_account
        principal = Principal(arn=f"arn:aws:iam::{account}:root", account=account, kind="root")
        body = await _read(request, operation)
    else:
        pending = await authenticator.sigv4(request, service="ecr",
                                            required_headers=REQUIRED_SIGNED_HEADERS)
        body = await _read(request, operation)
        principal = pending.verify(body)
    request["principal"] = principal
    params = load_params(body)
    validator("ecr").validate(operation, params)
    request["ecr_operation"] = operation
    result = await handler(ECRCall(request, operation, params, principal))
    return web.Response(body=json.dumps(result).encode(),
                        headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id})
