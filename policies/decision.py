"""The result of an evaluation: a value that explains itself.

`Decision.decision` uses the AWS policy simulator's words (`allowed`, `explicitDeny`,
`implicitDeny`); `matched_statements` are the statements that decided it; `reason` selects the
wording of AWS's denial message (ecr-api.md §5.4), which `denial_message()` renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["ALLOWED", "EXPLICIT_DENY", "IMPLICIT_DENY", "Decision", "MatchedStatement", "Reason"]

ALLOWED = "allowed"
EXPLICIT_DENY = "explicitDeny"
IMPLICIT_DENY = "implicitDeny"


class Reason(StrEnum):
    """Why the decision came out as it did; the deny reasons are AWS's phrases."""

    IDENTITY_ALLOW = "allowed by an identity-based policy"
    RESOURCE_ALLOW = "allowed by a resource-based policy"
    BOTH_ALLOW = "allowed by an identity-based and a resource-based policy"
    ACCOUNT_ROOT = "the account root user has full access to its own account"
    EXPLICIT_DENY_IDENTITY = "explicit deny in an identity-based policy"
    EXPLICIT_DENY_RESOURCE = "explicit deny in a resource-based policy"
    NO_IDENTITY_ALLOW = "no identity-based policy allows"
    NO_RESOURCE_ALLOW = "no resource-based policy allows"


@dataclass(frozen=True, slots=True)
class MatchedStatement:
    """A statement that took part in a decision. `policy_type` is `identity` or `resource`."""

    policy: str
    policy_type: str
    index: int
    sid: str | None
    effect: str

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "policyType": self.policy_type,
            "index": self.index,
            "sid": self.sid,
            "effect": self.effect,
        }

    def __str__(self) -> str:
        sid = f" (Sid {self.sid!r})" if self.sid else ""
        return f"{self.policy_type} policy {self.policy!r} Statement[{self.index}]{sid}: {self.effect}"


@dataclass(frozen=True)
class Decision:
    """An authorisation decision.

    `matched_statements`: for `explicitDeny` the applicable Deny statements; for `allowed` the
    Allow statements that granted; for `implicitDeny` the Allow statements that applied but were
    not enough (e.g. a cross-account identity allow without a resource-policy allow) — often none.
    `errors`: evaluation problems (unparseable request values); each made its clause false.
    """

    decision: str
    reason: Reason
    principal_arn: str
    action: str
    resource: str
    matched_statements: tuple[MatchedStatement, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOWED

    def denial_message(self) -> str:
        """AWS's AccessDenied text, e.g. `User: arn:… is not authorized to perform:
        ecr:PutImage on resource: arn:… because no identity-based policy allows the
        ecr:PutImage action`.

        Raises:
            ValueError: the request was allowed.
        """
        if self.allowed:
            raise ValueError("the request was allowed; there is no denial message")
        head = (
            f"User: {self.principal_arn} is not authorized to perform: {self.action} "
            f"on resource: {self.resource}"
        )
        if self.decision == EXPLICIT_DENY:
            return f"{head} with an {self.reason.value}"
        return f"{head} because {self.reason.value} the {self.action} action"

    def to_json(self) -> dict[str, Any]:
        """The `policy simulate --json` shape."""
        return {
            "decision": self.decision,
            "matchedStatements": [m.to_json() for m in self.matched_statements],
            "errors": list(self.errors),
        }
