"""``POST /``: the AWS JSON 1.1 APIs, dispatched on ``X-Amz-Target``."""

from __future__ import annotations

from aiohttp import web

from registry.ecr.dispatch import TARGET_PREFIX as ECR_PREFIX
from registry.ecr.dispatch import ecr_endpoint
from registry.ecr.errors import UnknownOperationException


async def api_endpoint(request: web.Request) -> web.Response:
    target = request.headers.get("X-Amz-Target", "")
    if target.startswith(ECR_PREFIX):
        return await ecr_endpoint(request)
    raise UnknownOperationException(f"Unknown operation {target[:120]!r}")
