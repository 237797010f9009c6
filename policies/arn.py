"""ARNs and principal identifiers: syntax checks shared by the parser and the request model.

An ARN is `arn:<partition>:<service>:<region>:<account>:<resource>`; the resource part may
itself contain `:` and `/`. Principals in a policy's `Principal` element are `"*"`, a 12-digit
account id, or one of the IAM/STS ARN forms in iam-policy-evaluation.md §2.4. Berth does not
store principals as unique ids (`AIDA…`), so those are rejected rather than silently unmatched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ACCOUNT_ID",
    "PARTITIONS",
    "Arn",
    "PrincipalRef",
    "RefKind",
    "parse_arn",
    "parse_principal_ref",
]

# Every pattern here is used with fullmatch. ASCII only: `\d` and `\w` would also accept
# other scripts' digits and letters ("１２３…"), which no account id or IAM name contains.
ACCOUNT_ID = re.compile(r"[0-9]{12}")
PARTITIONS = frozenset(
    {"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}
)
_NAME = r"[\w+=,.@-]+"
_PATH = r"(?:/[\x21-\x7e]*/)?"  # IAM paths: `/division_abc/subdivision_xyz/`
_IAM_USER_OR_ROLE = re.compile(rf"(user|role)({_PATH}|/)({_NAME})", re.ASCII)
_STS_SESSION = re.compile(rf"assumed-role/({_NAME})/({_NAME})", re.ASCII)
_STS_FEDERATED = re.compile(rf"federated-user/({_NAME})", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SERVICE = re.compile(r"[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+")


@dataclass(frozen=True, slots=True)
class Arn:
    """The six components of an ARN."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def parse_arn(text: str) -> Arn | None:
    """Split an ARN into components; `None` when `text` is not `arn:` plus five colons, or
    holds a control character (no ARN does; "…:repository/app\\n" must not pass for one)."""
    if _CONTROL.search(text):
        return None
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return Arn(*parts[1:])


class RefKind(Enum):
    """What a principal identifier names."""

    EVERYONE = "everyone"  # "*"
    ACCOUNT = "account"  # "123456789012" or "arn:aws:iam::123456789012:root"
    USER = "user"
    ROLE = "role"  # every session of the role
    SESSION = "session"  # one assumed-role session
    FEDERATED_USER = "federated-user"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class PrincipalRef:
    """A parsed principal identifier.

    `account` is empty for EVERYONE and SERVICE; `name` is the user, role or session owner's
    name (for ROLE and SESSION the role name, without path), or the service host name.
    """

    kind: RefKind
    account: str = ""
    name: str = ""
    arn: str = ""


def parse_principal_ref(text: str, *, service: bool = False) -> PrincipalRef | None:
    """Parse one value of `Principal.AWS` (or, with `service=True`, of `Principal.Service`).

    Returns `None` for anything that is not a valid identifier — including partial wildcards
    ("You cannot use a wildcard to match part of a principal name or ARN", §2.4).
    """
    if text == "*":
        return PrincipalRef(RefKind.EVERYONE)
    if service:
        return PrincipalRef(RefKind.SERVICE, name=text) if _SERVICE.fullmatch(text) else None
    if ACCOUNT_ID.fullmatch(text):
        return PrincipalRef(RefKind.ACCOUNT, account=text)
    arn = parse_arn(text)
    if arn is None or arn.partition not in PARTITIONS or arn.region:
        return None
    if not ACCOUNT_ID.fullmatch(arn.account) or "*" in text or "?" in text:
        return None
    if arn.service == "iam":
        if arn.resource == "root":
            return PrincipalRef(RefKind.ACCOUNT, account=arn.account)
        m = _IAM_USER_OR_ROLE.fullmatch(arn.resource)
        if m is None:
            return None
        kind = RefKind.USER if m.group(1) == "user" else RefKind.ROLE
        return PrincipalRef(kind, account=arn.account, name=m.group(3), arn=text)
    if arn.service == "sts":
        m = _STS_SESSION.fullmatch(arn.resource)
        if m is not None:
            return PrincipalRef(RefKind.SESSION, account=arn.account, name=m.group(1), arn=text)
        m = _STS_FEDERATED.fullmatch(arn.resource)
        if m is not None:
            return PrincipalRef(RefKind.FEDERATED_USER, account=arn.account, name=m.group(1), arn=text)
    return None
