"""The request being authorised: who (principal), what (action), on what (resource), and the
context keys conditions and policy variables read.

`Request.context_keys` is the full, lower-cased key map: the principal-derived global keys
(`aws:PrincipalAccount`, `aws:PrincipalArn`, `aws:PrincipalType`, `aws:username`, `aws:userid`,
`aws:PrincipalTag/*`), the time keys when `now` is given (`aws:CurrentTime`, `aws:EpochTime`),
`aws:ResourceAccount`, and then the caller's `context`, which wins on conflict. Condition key
names are case-insensitive (§2.1), hence lower-cased; a key mapped to `()` is treated as absent.
The evaluator never reads a clock: time comes in as `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache

from policies.arn import PrincipalRef, RefKind, parse_arn, parse_principal_ref

__all__ = ["ANONYMOUS", "Principal", "PrincipalType", "Request"]

ANONYMOUS = "anonymous"


class PrincipalType(StrEnum):
    """`aws:PrincipalType` values (§5), plus `Service` for AWS-style service principals."""

    USER = "User"
    ACCOUNT = "Account"  # the account root user
    ASSUMED_ROLE = "AssumedRole"
    FEDERATED_USER = "FederatedUser"
    ANONYMOUS = "Anonymous"
    SERVICE = "Service"


@dataclass(frozen=True)
class Principal:
    """The caller. `arn` is what denial messages print (`anonymous` for anonymous callers, the
    host name for a service); `role_name` is set for assumed-role sessions; `userid` is the
    unique id when known (`aws:userid` is absent otherwise, except for root and anonymous)."""

    arn: str
    account: str
    type: PrincipalType
    username: str | None = None
    userid: str | None = None
    role_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(ANONYMOUS, ANONYMOUS, PrincipalType.ANONYMOUS, userid=ANONYMOUS)

    @classmethod
    def from_arn(
        cls, arn: str, *, userid: str | None = None, tags: Mapping[str, str] | None = None
    ) -> Principal:
        """Derive account, type, user name and role from a principal ARN.

        Accepts user, role (treated as a session of that role), assumed-role session,
        federated-user and account-root ARNs, a bare 12-digit account id (the root user),
        a service host name (`codebuild.amazonaws.com`) and `anonymous`.

        Raises:
            ValueError: `arn` is none of those.
        """
        tag_pairs = tuple(sorted((tags or {}).items()))
        if arn == ANONYMOUS:
            return cls.anonymous()
        ref = parse_principal_ref(arn)
        if ref is None and "." in arn and ":" not in arn:
            ref = parse_principal_ref(arn, service=True)
        if ref is None or ref.kind is RefKind.EVERYONE:
            raise ValueError(f"not a principal ARN: {arn!r}")
        return cls._from_ref(ref, userid=userid, tags=tag_pairs)

    @classmethod
    def _from_ref(cls, ref: PrincipalRef, *, userid: str | None, tags: tuple[tuple[str, str], ...]) -> Principal:
        if ref.kind is RefKind.SERVICE:
            return cls(ref.name, "", PrincipalType.SERVICE, tags=tags)
        if ref.kind is RefKind.ACCOUNT:
            root = f"arn:aws:iam::{ref.account}:root"
            return cls(root, ref.account, PrincipalType.ACCOUNT, userid=userid or ref.account, tags=tags)
        if ref.kind is RefKind.USER:
            return cls(ref.arn, ref.account, PrincipalType.USER, username=ref.name, userid=userid, tags=tags)
        if ref.kind is RefKind.FEDERATED_USER:
            return cls(ref.arn, ref.account, PrincipalType.FEDERATED_USER, userid=userid, tags=tags)
        return cls(ref.arn, ref.account, PrincipalType.ASSUMED_ROLE, userid=userid, role_name=ref.name, tags=tags)

    @property
    def principal_arn(self) -> str | None:
        """`aws:PrincipalArn`: role sessions report the role's ARN (§5); absent when anonymous."""
        if self.type in (PrincipalType.ANONYMOUS, PrincipalType.SERVICE):
            return None
        if self.role_name is not None and ":sts::" in self.arn:
            arn = parse_arn(self.arn)
            partition = arn.partition if arn is not None else "aws"
            return f"arn:{partition}:iam::{self.account}:role/{self.role_name}"
        return self.arn

    def context_keys(self) -> dict[str, tuple[str, ...]]:
        """The principal-derived global keys, lower-cased (a fresh dict each call)."""
        keys = self.__dict__.get("_keys")
        if keys is None:  # derived once per Principal; principals are reused across requests
            keys = self._derive_keys()
            object.__setattr__(self, "_keys", keys)
        return dict(keys)

    def _derive_keys(self) -> dict[str, tuple[str, ...]]:
        keys: dict[str, tuple[str, ...]] = {"aws:principaltype": (self.type.value,)}
        if self.type is not PrincipalType.SERVICE:
            keys["aws:principalaccount"] = (self.account,)
        if (parn := self.principal_arn) is not None:
            keys["aws:principalarn"] = (parn,)
        if self.username is not None:
            keys["aws:username"] = (self.username,)
        if self.userid is not None:
            keys["aws:userid"] = (self.userid,)
        for tag, value in self.tags:
            keys[f"aws:principaltag/{tag.lower()}"] = (value,)
        return keys


@lru_cache(maxsize=16)
def _time_keys(epoch_seconds: int) -> dict[str, tuple[str, ...]]:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return {
        "aws:currenttime": (moment.strftime("%Y-%m-%dT%H:%M:%SZ"),),
        "aws:epochtime": (str(epoch_seconds),),
    }


@dataclass(frozen=True)
class Request:
    """One authorisation question. `resource` is an ARN or `*` (actions without
    resource-level permissions). `resource_account` defaults to the ARN's account, or to the
    principal's account when the ARN has none (`*`, S3 bucket ARNs).

    Derived once, at construction: `owner_account`, `action_key` (the action lower-cased:
    action matching is case-insensitive, §2.2) and `context_keys` (see the module docstring).
    """

    principal: Principal
    action: str
    resource: str
    context: Mapping[str, str | tuple[str, ...] | list[str]] = field(default_factory=dict)
    resource_account: str | None = None
    now: datetime | None = None

    # Set in __post_init__ (plain attributes, not fields: they are functions of the fields).
    owner_account: str = field(init=False, repr=False, compare=False)
    action_key: str = field(init=False, repr=False, compare=False)
    context_keys: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = self.resource_account
        if not owner:
            arn = parse_arn(self.resource)
            owner = arn.account if arn is not None and arn.account else self.principal.account
        keys = self.principal.context_keys()
        keys["aws:resourceaccount"] = (owner,)
        if self.now is not None:
            keys.update(_time_keys(int(self.now.timestamp())))
        for name, value in self.context.items():
            values = (value,) if isinstance(value, str) else tuple(value)
            key = name.lower()
            if values:
                keys[key] = values
            else:
                keys.pop(key, None)
        object.__setattr__(self, "owner_account", owner)
        object.__setattr__(self, "action_key", self.action.lower())
        object.__setattr__(self, "context_keys", keys)
