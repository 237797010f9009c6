"""``POST /`` with ``X-Amz-Target``: the ECR JSON 1.1 endpoint.

Order of checks, as AWS does it: the target names a known operation, the request is signed
by a known key (SigV4), the JSON body parses, the input satisfies the model's constraints,
then the operation runs (and authorizes its own action on its own resource).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Awaitable, Callable

from aiohttp import web

from registry.appkeys import AUTHENTICATOR, CONFIG
from registry.auth.principal import Principal
from registry.ecr import ops_images, ops_layers, ops_registry, ops_repositories, ops_scanning
from registry.ecr.call import ECRCall
from registry.ecr.errors import SerializationException, UnknownOperationException
from registry.ecr.validate import load_params, validator

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY = 32 * 1024 * 1024  # UploadLayerPart carries up to 20 MiB, base64-encoded

Operation = Callable[[ECRCall], Awaitable[dict[str, Any]]]
OPERATIONS: dict[str, Operation] = {
    **ops_repositories.OPERATIONS, **ops_images.OPERATIONS, **ops_layers.OPERATIONS,
    **ops_registry.OPERATIONS, **ops_scanning.OPERATIONS,
}


async def _read_body(request: web.Request) -> bytes:
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_BODY:
            raise SerializationException("Request body is too large")
    return bytes(body)


async def ecr_endpoint(request: web.Request) -> web.Response:
    request_id = str(uuid.uuid4())
    request["aws_request_id"] = request_id
    target = request.headers.get("X-Amz-Target", "")
    if not target.startswith(TARGET_PREFIX):
        raise UnknownOperationException(f"Unknown operation {target[:120]!r}")
    operation = target[len(TARGET_PREFIX):]
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise UnknownOperationException(f"Unknown operation {operation[:120]!r}")
    body = await _read_body(request)
    authenticator = request.app.get(AUTHENTICATOR)
    if authenticator is None:  # authorization off: the default account's root
        account = request.app[CONFIG].default_account
        principal = Principal(arn=f"arn:aws:iam::{account}:root", account=account, kind="root")
    else:
        principal = await authenticator.sigv4(request, body, service="ecr")
    request["principal"] = principal
    params = load_params(body)
    validator("ecr").validate(operation, params)
    request["ecr_operation"] = operation
    result = await handler(ECRCall(request, operation, params, principal))
    return web.Response(body=json.dumps(result).encode(),
                        headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id})
