"""Registry-level ECR operations: authorization token, registry policy, account settings."""

from __future__ import annotations

import json
import time
from typing import Any

from registry.appkeys import TOKENS
from registry.ecr.call import ECRCall
from registry.ecr.errors import (
    InvalidParameterException, RegistryPolicyNotFoundException, ValidationException,
)
from registry.ecr.ops_repositories import check_policy_text
from registry.auth.tokens import authorization_token

REGISTRY_POLICY = "REGISTRY_POLICY"
REPLICATION = "REPLICATION_CONFIGURATION"
ACCOUNT_SETTINGS = {
    "BASIC_SCAN_TYPE_VERSION": ("AWS_NATIVE", {"AWS_NATIVE", "CLAIR"}),
    "REGISTRY_POLICY_SCOPE": ("V2", {"V1", "V2"}),
    "BLOB_MOUNTING": ("DISABLED", {"ENABLED", "DISABLED"}),
}


async def get_authorization_token(call: ECRCall) -> dict[str, Any]:
    # No resource-level permissions: only an identity policy can allow it (reference 4.1).
    await call.authorize("ecr:GetAuthorizationToken")
    principal = call.principal
    password, expires_at = call.app[TOKENS].issue(
        principal_arn=principal.arn, account=principal.account, user_id=principal.user_id,
        access_key_id=principal.access_key_id, now=time.time(),
        ttl=call.config.auth.token_ttl_seconds)
    endpoint = f"{call.request.scheme}://{call.host}"
    return {"authorizationData": [{"authorizationToken": authorization_token(password),
                                   "expiresAt": expires_at, "proxyEndpoint": endpoint}]}


async def describe_registry(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:DescribeRegistry")
    stored = await call.metadata.get_setting(call.account, REPLICATION)
    return {"registryId": call.account,
            "replicationConfiguration": json.loads(stored) if stored else {"rules": []}}


async def put_registry_policy(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:PutRegistryPolicy")
    text = call.params["policyText"]
    check_policy_text(text, "registry")
    await call.metadata.put_setting(call.account, REGISTRY_POLICY, text)
    call.policies_changed()
    return {"registryId": call.account, "policyText": text}


def _no_registry_policy(account: str) -> RegistryPolicyNotFoundException:
    return RegistryPolicyNotFoundException(
        f"Registry policy does not exist in the registry with id '{account}'")


async def get_registry_policy(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:GetRegistryPolicy")
    text = await call.metadata.get_setting(call.account, REGISTRY_POLICY)
    if text is None:
        raise _no_registry_policy(call.account)
    return {"registryId": call.account, "policyText": text}


async def delete_registry_policy(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:DeleteRegistryPolicy")
    text = await call.metadata.get_setting(call.account, REGISTRY_POLICY)
    if text is None:
        raise _no_registry_policy(call.account)
    await call.metadata.put_setting(call.account, REGISTRY_POLICY, None)
    call.policies_changed()
    return {"registryId": call.account, "policyText": text}


def _setting(name: str) -> tuple[str, set[str]]:
    if name not in ACCOUNT_SETTINGS:
        raise InvalidParameterException(
            f"Invalid parameter at 'name' failed to satisfy constraint: 'Member must satisfy "
            f"enum value set: [{', '.join(ACCOUNT_SETTINGS)}]'")
    return ACCOUNT_SETTINGS[name]


async def get_account_setting(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:GetAccountSetting")
    name = call.params["name"]
    default, _ = _setting(name)
    value = await call.metadata.get_setting(call.account, name)
    return {"name": name, "value": value or default}


async def put_account_setting(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:PutAccountSetting")
    name, value = call.params["name"], call.params["value"]
    _, allowed = _setting(name)
    if value not in allowed:
        raise ValidationException(f"Account setting {name} does not accept the value "
                                  f"'{value[:100]}'; valid values: {sorted(allowed)}")
    await call.metadata.put_setting(call.account, name, value)
    return {"name": name, "value": value}


OPERATIONS = {
    "GetAuthorizationToken": get_authorization_token,
    "DescribeRegistry": describe_registry,
    "PutRegistryPolicy": put_registry_policy,
    "GetRegistryPolicy": get_registry_policy,
    "DeleteRegistryPolicy": delete_registry_policy,
    "GetAccountSetting": get_account_setting,
    "PutAccountSetting": put_account_setting,
}
