"""Berth's IAM policy language: strict parsing, pure evaluation, explained decisions.

Pure: standard library only, no I/O (except `policies.cli`), nothing else of Berth's imported.

Typical use on the request path::

    cache = PolicyCache()
    identity = [cache.get(text, kind=PolicyKind.IDENTITY, name=n) for n, text in user_policies]
    resource = [cache.get(repo_policy_text, kind=PolicyKind.RESOURCE, name="repository")]
    request = Request(Principal.from_arn(user_arn), "ecr:PutImage", repo_arn,
                      context={"aws:SourceIp": ip, "aws:SecureTransport": "true"}, now=now)
    decision = evaluate(request, identity, resource)
    if not decision.allowed:
        raise AccessDenied(decision.denial_message())
"""

from policies.cache import PolicyCache
from policies.decision import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, Decision, MatchedStatement, Reason
from policies.evaluate import evaluate
from policies.model import (
    VERSION_2008,
    VERSION_2012,
    Condition,
    Effect,
    Patterns,
    Policy,
    PolicyError,
    PolicyKind,
    PrincipalBlock,
    Problem,
    Statement,
)
from policies.parse import MAX_SIZE, parse_policy, validate
from policies.render import dumps, render_policy
from policies.request import Principal, PrincipalType, Request

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "MAX_SIZE",
    "VERSION_2008",
    "VERSION_2012",
    "Condition",
    "Decision",
    "Effect",
    "MatchedStatement",
    "Patterns",
    "Policy",
    "PolicyCache",
    "PolicyError",
    "PolicyKind",
    "Principal",
    "PrincipalBlock",
    "PrincipalType",
    "Problem",
    "Reason",
    "Request",
    "Statement",
    "dumps",
    "evaluate",
    "parse_policy",
    "render_policy",
    "validate",
]
