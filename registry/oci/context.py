"""What every /v2/ handler needs first: the account, the repository name, the repository."""

from __future__ import annotations

import re

from aiohttp import web

from registry.appkeys import CONFIG, METADATA
from registry.metadata.models import Repository
from registry.oci.errors import NameUnknown
from registry.oci.names import check_name

_ACCOUNT_HOST = re.compile(r"^([0-9]{12})\.")


def account_of(request: web.Request) -> str:
    """ECR addressing: ``<12-digit account>.<anything>`` reaches that account's registry;
    every other host reaches the default account."""
    match = _ACCOUNT_HOST.match(request.host or "")
    if match:
        return match.group(1)
    return request.app[CONFIG].default_account


def repository_name(request: web.Request) -> str:
    return check_name(request.match_info["name"])


def name_unknown(name: str, account: str, *, hint: str = "") -> NameUnknown:
    """ECR's text for a missing repository (reference 4.3), plus what to do about it."""
    return NameUnknown(f"The repository with name '{name}' does not exist in the registry "
                       f"with id '{account}'{hint}", detail={"name": name})


async def existing_repository(request: web.Request, account: str, name: str) -> Repository:
    """Raises: NameUnknown."""
    repo = await request.app[METADATA].get_repository(account, name)
    if repo is None:
        raise name_unknown(name, account)
    return repo


async def push_target(request: web.Request, account: str, name: str) -> Repository:
    """The repository a push writes to: created on first push when the registry allows it
    (``create_on_push``, Berth's default), else it must exist as in ECR."""
    metadata = request.app[METADATA]
    if request.app[CONFIG].create_on_push:
        return await metadata.ensure_repository(account, name)
    repo = await metadata.get_repository(account, name)
    if repo is None:
        # Pushing first and creating on demand is what most users try: say how to create it.
        raise name_unknown(name, account, hint=(
            f"; this registry does not create repositories on push (create_on_push = false): "
            f"create it first with 'aws ecr create-repository --repository-name {name}'"))
    return repo
