"""One ECR API call: the operation's input, its caller, and what it may touch."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from registry.appkeys import AUTHORIZER, BLOB_CACHE, BLOBS, CONFIG, METADATA, PULL_PROTECTION
from registry.auth.authorize import AccessRequest, check, repository_arn
from registry.auth.principal import Principal
from registry.ecr.errors import AccessDeniedException, RepositoryNotFoundException
from registry.metadata.models import Repository


@dataclass
class ECRCall:
    request: web.Request
    operation: str
    params: dict[str, Any]
    principal: Principal

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def config(self):
        return self.app[CONFIG]

    @property
    def metadata(self):
        return self.app[METADATA]

    @property
    def blobs(self):
        return self.app[BLOBS]

    @property
    def cache(self):
        return self.app[BLOB_CACHE]

    @property
    def account(self) -> str:
        """The registry addressed: ``registryId`` when given, else the caller's account."""
        return self.params.get("registryId") or self.principal.account \
            or self.config.default_account

    @property
    def host(self) -> str:
        return self.request.host

    def repository_uri(self, name: str, account: str | None = None) -> str:
        """ECR's ``<account>.dkr.ecr.<region>.amazonaws.com/<name>``, on the host the client used."""
        account = account or self.account
        host = self.host
        if account_of_host(host) != account and account != self.config.default_account:
            # Reach another account's registry through "<account>.<host>"; an IP address
            # cannot take a subdomain, so such URIs use localhost (README: /etc/hosts).
            bare, sep, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
            if not sep:
                bare, port = host, ""
            if _is_ip(bare.strip("[]")):
                bare = "localhost"
            host = f"{account}.{bare}{sep}{port}"
        return f"{host}/{name}"

    def arn(self, name: str) -> str:
        return repository_arn(self.config.region, self.account, name)

    async def authorize(self, action: str, repository: str | None = None, *,
                        repository_obj: Repository | None = None) -> None:
        """Raises: AccessDeniedException with AWS's message naming action and resource."""
        resource = self.arn(repository) if repository else "*"
        access = AccessRequest(principal=self.principal, action=action, resource=resource,
                               account=self.account, source_ip=self.request.remote,
                               secure_transport=self.request.secure)
        verdict = await check(self.request, access)
        if not verdict.allowed:
            raise AccessDeniedException(verdict.message)

    async def allowed(self, action: str, repository: str | None = None) -> bool:
        """Whether the caller may; for filtering listings (refusals are not logged)."""
        resource = self.arn(repository) if repository else "*"
        access = AccessRequest(principal=self.principal, action=action, resource=resource,
                               account=self.account, source_ip=self.request.remote,
                               secure_transport=self.request.secure)
        return (await check(self.request, access, record=False)).allowed

    def policies_changed(self) -> None:
        """A policy or resource tag changed: drop this process's memoised lookups now
        (other workers see the change within the authorizer's memo TTL, one second)."""
        invalidate = getattr(self.app[AUTHORIZER], "invalidate", None)
        if invalidate is not None:
            invalidate()
        self.app[PULL_PROTECTION].invalidate()

    async def repository(self, name: str) -> Repository:
        """Raises: RepositoryNotFoundException."""
        repo = await self.metadata.get_repository(self.account, name)
        if repo is None:
            raise repository_not_found(name, self.account)
        return repo


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def account_of_host(host: str) -> str | None:
    head = host.split(".", 1)[0]
    return head if len(head) == 12 and head.isascii() and head.isdigit() and "." in host else None


def repository_not_found(name: str, account: str) -> RepositoryNotFoundException:
    return RepositoryNotFoundException(
        f"The repository with name '{name}' does not exist in the registry with id '{account}'")
