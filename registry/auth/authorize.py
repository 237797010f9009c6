"""The authorization seam: every route asks one function whether a request may proceed.

``authorize(request, action, account, repository)`` builds (principal, ECR action, resource
ARN) and hands it to the application's ``Authorizer``; each decision is remembered on the
request for the audit log. Without an ``Authorizer`` that denies (``AllowAll``, auth off)
every request proceeds.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from registry.appkeys import AUTHENTICATOR, AUTHORIZER, CONFIG
from registry.auth.principal import ANONYMOUS, Principal
from registry.oci.errors import Denied

audit_log = logging.getLogger("registry.audit")


@dataclass(frozen=True, slots=True)
class AccessRequest:
    principal: Principal
    action: str  # "ecr:BatchGetImage"
    resource: str  # "arn:aws:ecr:<region>:<account>:repository/<name>" or "*"
    account: str  # the account that owns the resource
    source_ip: str | None = None
    secure_transport: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    decision: str = "allowed"  # allowed | explicitDeny | implicitDeny
    message: str = ""
    statements: tuple[dict[str, Any], ...] = field(default_factory=tuple)


ALLOWED = Verdict(True)


class Authorizer(Protocol):
    async def decide(self, access: AccessRequest) -> Verdict:
        """Decide one access; a denial's message names the action and the resource."""


class AllowAll:
    """The authorizer when authorization is off: every request is allowed."""

    async def decide(self, access: AccessRequest) -> Verdict:
        return ALLOWED


def repository_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


# Matched in full (a `$` would let "…/app\n" through); the name is checked by the caller.
_REPOSITORY_ARN = re.compile(r"arn:aws:ecr:([a-z0-9-]+):([0-9]{12}):repository/(.+)", re.DOTALL)


def parse_repository_arn(arn: str) -> tuple[str, str, str] | None:
    """``(region, account, name)`` of a repository ARN, or None when ``arn`` is not one."""
    match = _REPOSITORY_ARN.fullmatch(arn)
    return None if match is None else (match[1], match[2], match[3])


def principal_of(request: web.Request) -> Principal:
    return request.get("principal", ANONYMOUS)


def access_request(request: web.Request, action: str, account: str,
                   repository: str | None) -> AccessRequest:
    config = request.app[CONFIG]
    resource = repository_arn(config.region, account, repository) if repository else "*"
    return AccessRequest(principal=principal_of(request), action=action, resource=resource,
                         account=account, source_ip=request.remote,
                         secure_transport=request.secure)


async def check(request: web.Request, access: AccessRequest, *, record: bool = True) -> Verdict:
    """Decide and record: every decision is kept for the audit line, denials logged now.

    ``record=False`` is for filtering listings, where a refusal only hides an entry.
    """
    verdict = await request.app[AUTHORIZER].decide(access)
    if not record:
        return verdict
    request.setdefault("verdicts", []).append((access, verdict))
    if not verdict.allowed:
        audit_log.info("denied", extra=audit_fields(request, access, verdict))
    return verdict


def audit_fields(request: web.Request, access: AccessRequest, verdict: Verdict) -> dict[str, Any]:
    return {"principal": access.principal.arn, "action": access.action,
            "resource": access.resource, "decision": verdict.decision,
            "statements": list(verdict.statements), "source_ip": access.source_ip,
            "request_id": request.get("request_id", "-")}


async def is_allowed(request: web.Request, action: str, account: str,
                     repository: str | None, *, record: bool = True) -> bool:
    access = access_request(request, action, account, repository)
    return (await check(request, access, record=record)).allowed


async def authorize(request: web.Request, action: str, account: str,
                    repository: str | None) -> None:
    """Allow the request or raise.

    Raises:
        Unauthorized: an anonymous caller was refused (so the client logs in and retries).
        Denied: an authenticated caller was refused; the message names action and resource.
    """
    access = access_request(request, action, account, repository)
    verdict = await check(request, access)
    if verdict.allowed:
        return
    authenticator = request.app.get(AUTHENTICATOR)
    if access.principal.is_anonymous and authenticator is not None:
        raise authenticator.challenge(request, "authentication required")
    raise Denied(verdict.message)
