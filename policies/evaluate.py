"""The decision procedure: pure, synchronous, and it explains itself.

Berth has identity policies, repository policies and the registry policy — no SCPs, permissions
boundaries or session policies — so AWS's procedure (iam-policy-evaluation.md §3.2–§3.4) reduces
to:

1. a Deny statement that applies, in any policy → `explicitDeny`;
2. same account: an applicable Allow in an identity policy, or in a resource policy whose
   principal names the caller itself (user, role, session, service or `"*"`) → `allowed`; a
   resource-policy Allow that reaches the caller only through its account delegates to the
   account, so it alone is not enough;
3. cross-account: an identity Allow *and* a resource-policy Allow naming the caller or its
   account → `allowed`;
4. otherwise `implicitDeny`.

Callers with no identity policies of their own — anonymous callers and service principals — are
allowed only by a resource policy that names them directly (`"*"` or the service). The account
root user is treated as having an identity allow for everything (AWS: "full access") but is
still subject to explicit denies and, cross-account, to the resource policy.

A statement applies when its action, principal (resource policies), resource and every
condition match; an unmet condition makes it not apply — it never denies by itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from policies.compile import Reach
from policies.decision import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, Decision, MatchedStatement, Reason
from policies.model import Policy
from policies.request import PrincipalType, Request

__all__ = ["evaluate"]

_NO_IDENTITY = (PrincipalType.ANONYMOUS, PrincipalType.SERVICE)


def evaluate(
    request: Request,
    identity_policies: Sequence[Policy],
    resource_policies: Sequence[Policy] = (),
) -> Decision:
    """Decide `request` against the caller's identity policies and the resource's policies
    (repository policy and registry policy). Never raises for a well-formed `Request`."""
    context = request.context_keys
    action = request.action_key
    resource = request.resource
    principal = request.principal
    errors: list[str] = []
    id_deny: list[MatchedStatement] = []
    id_allow: list[MatchedStatement] = []
    res_deny: list[MatchedStatement] = []
    res_direct: list[MatchedStatement] = []
    res_account: list[MatchedStatement] = []

    for policy in identity_policies:
        for st in policy.compiled.statements_for(action):
            if st.applies(resource, context, errors):
                (id_deny if st.is_deny else id_allow).append(st.ref)

    for policy in resource_policies:
        for st in policy.compiled.statements_for(action):
            reach = Reach.DIRECT if st.principal is None else st.principal.reach(principal)
            if reach is Reach.NONE or not st.applies(resource, context, errors):
                continue
            if st.is_deny:
                res_deny.append(st.ref)
            else:
                (res_direct if reach is Reach.DIRECT else res_account).append(st.ref)

    def decide(decision: str, reason: Reason, matched: list[MatchedStatement]) -> Decision:
        arn = principal.arn
        return Decision(decision, reason, arn, request.action, resource, tuple(matched), tuple(errors))

    if id_deny or res_deny:
        reason = Reason.EXPLICIT_DENY_IDENTITY if id_deny else Reason.EXPLICIT_DENY_RESOURCE
        return decide(EXPLICIT_DENY, reason, id_deny + res_deny)

    if principal.type in _NO_IDENTITY:
        if res_direct:
            return decide(ALLOWED, Reason.RESOURCE_ALLOW, res_direct)
        return decide(IMPLICIT_DENY, Reason.NO_RESOURCE_ALLOW, res_account)

    is_root = principal.type is PrincipalType.ACCOUNT
    if principal.account == request.owner_account:
        if id_allow or res_direct:
            reason = (
                Reason.BOTH_ALLOW if id_allow and res_direct
                else Reason.IDENTITY_ALLOW if id_allow
                else Reason.RESOURCE_ALLOW
            )
            return decide(ALLOWED, reason, id_allow + res_direct)
        if is_root:
            return decide(ALLOWED, Reason.ACCOUNT_ROOT, [])
        return decide(IMPLICIT_DENY, Reason.NO_IDENTITY_ALLOW, res_account)

    res_allow = res_direct + res_account
    if (id_allow or is_root) and res_allow:
        return decide(ALLOWED, Reason.BOTH_ALLOW, id_allow + res_allow)
    if id_allow or is_root:
        return decide(IMPLICIT_DENY, Reason.NO_RESOURCE_ALLOW, id_allow)
    return decide(IMPLICIT_DENY, Reason.NO_IDENTITY_ALLOW, res_allow)
