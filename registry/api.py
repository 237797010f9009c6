"""``POST /``: the AWS JSON 1.1 APIs, dispatched on ``X-Amz-Target``.

Berth serves one such API, ECR's. An AWS client pointed at a wrong URL (``/v2/`` is the
usual slip: it is where the registry lives) is told where the API is, in the AWS error shape
it can read, rather than given a registry 404 it cannot.
"""

from __future__ import annotations

from aiohttp import web

from registry.ecr.dispatch import TARGET_PREFIX as ECR_PREFIX
from registry.ecr.dispatch import ecr_endpoint
from registry.ecr.errors import UnknownOperationException

SERVED = f"Berth serves the Amazon ECR API only (X-Amz-Target: {ECR_PREFIX}<Operation>)"


async def api_endpoint(request: web.Request) -> web.Response:
    target = request.headers.get("X-Amz-Target")
    if target is None:
        raise UnknownOperationException(f"Missing X-Amz-Target header. {SERVED}.")
    if target.startswith(ECR_PREFIX):
        return await ecr_endpoint(request)
    raise UnknownOperationException(f"Unknown operation {target[:120]!r}. {SERVED}.")


def is_api_request(request: web.BaseRequest) -> bool:
    """Whether an AWS JSON client sent ``request``: the answer must then be in AWS's shape."""
    return request.method == "POST" and "X-Amz-Target" in request.headers


def check_api_path(request: web.BaseRequest) -> None:
    """Refuse an AWS JSON request sent anywhere but ``POST /``, naming where to go.

    Raises:
        UnknownOperationException: in AWS's shape, so the client shows the message.
    """
    if request.path == "/" or not is_api_request(request):
        return
    endpoint = f"{request.scheme}://{(request.host or '<host>')[:100]}"
    hint = "this is the container registry API (/v2/); " if request.path.startswith("/v2") else ""
    raise UnknownOperationException(
        f"No AWS API at {request.path[:100]!r}: {hint}the ECR API is served at POST / on this "
        f"host. Use --endpoint-url {endpoint} (no path), or AWS_ENDPOINT_URL_ECR={endpoint}.")
