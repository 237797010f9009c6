"""The authorization seam: every route asks one function whether a request may proceed.

``authorize(request, action, repository)`` builds (principal, ECR action, repository ARN)
and hands it to the application's ``Authorizer``. The registry-core default allows every
request; the ECR/auth layer plugs in policy evaluation without touching any handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from registry.appkeys import AUTHORIZER, CONFIG
from registry.auth.principal import ANONYMOUS, Principal
from registry.oci.errors import Denied


@dataclass(frozen=True, slots=True)
class AccessRequest:
    principal: Principal
    action: str  # "ecr:BatchGetImage"
    resource: str  # "arn:aws:ecr:<region>:<account>:repository/<name>" or "*"
    account: str  # the account that owns the resource
    source_ip: str | None = None
    secure_transport: bool = False


class Authorizer(Protocol):
    async def decide(self, access: AccessRequest) -> str | None:
        """Return None when allowed, else the denial message naming action and resource."""


class AllowAll:
    """The registry core's authorizer: every request is allowed."""

    async def decide(self, access: AccessRequest) -> str | None:
        return None


def repository_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


def principal_of(request: web.Request) -> Principal:
    return request.get("principal", ANONYMOUS)


def access_request(request: web.Request, action: str, account: str,
                   repository: str | None) -> AccessRequest:
    config = request.app[CONFIG]
    resource = repository_arn(config.region, account, repository) if repository else "*"
    return AccessRequest(principal=principal_of(request), action=action, resource=resource,
                         account=account, source_ip=request.remote,
                         secure_transport=request.secure)


async def is_allowed(request: web.Request, action: str, account: str,
                     repository: str | None) -> bool:
    access = access_request(request, action, account, repository)
    return await request.app[AUTHORIZER].decide(access) is None


async def authorize(request: web.Request, action: str, account: str,
                    repository: str | None) -> None:
    """Allow the request or raise ``Denied`` naming the action and resource.

    Raises:
        Denied: the authorizer refused.
    """
    access = access_request(request, action, account, repository)
    message = await request.app[AUTHORIZER].decide(access)
    if message is not None:
        raise Denied(message)
