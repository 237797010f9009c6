"""Helpers shared by the policy tests: build requests and policies from plain data.

A request spec is the corpus's JSON shape:
    {"principal": ARN, "action": str, "resource": ARN|"*", "resourceAccount"?: str,
     "context"?: {key: str | [str]}, "principalTags"?: {k: v}, "userid"?: str, "now"?: ISO}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from policies import Policy, PolicyKind, Principal, Request, parse_policy

ACCOUNT = "123456789012"
OTHER = "210987654321"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
REPO = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/app"


def request(spec: dict[str, Any]) -> Request:
    principal = Principal.from_arn(spec["principal"], userid=spec.get("userid"), tags=spec.get("principalTags"))
    now = spec.get("now")
    return Request(
        principal,
        spec["action"],
        spec["resource"],
        context=spec.get("context", {}),
        resource_account=spec.get("resourceAccount"),
        now=datetime.fromisoformat(now) if now else None,
    )


def identity(*statements: dict[str, Any], name: str = "id", version: str | None = "2012-10-17") -> Policy:
    doc: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        doc["Version"] = version
    return parse_policy(doc, kind=PolicyKind.IDENTITY, name=name)


def resource(*statements: dict[str, Any], name: str = "repo", version: str | None = "2012-10-17") -> Policy:
    doc: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        doc["Version"] = version
    return parse_policy(doc, kind=PolicyKind.RESOURCE, name=name)


def allow(action: str | list[str] = "ecr:*", res: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": res, **extra}


def deny(action: str | list[str] = "ecr:*", res: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": res, **extra}
