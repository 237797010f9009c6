"""Compile a parsed `Policy` into matchers, once, so evaluation never re-parses or recompiles.

A `CompiledPolicy` holds one `CompiledStatement` per statement and a small memo from action
name to the statements whose `Action`/`NotAction` match it: the registry evaluates a handful of
distinct actions, so after the first request per action the action filter is one dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from policies.arn import RefKind, parse_principal_ref
from policies.conditions import CompiledCondition, compile_condition
from policies.decision import MatchedStatement
from policies.model import Effect, Patterns, Policy, PrincipalBlock, Statement
from policies.operators import parse_operator
from policies.request import Principal, PrincipalType
from policies.variables import PatternTemplate, compile_pattern_template, has_variables, match_templates, parse_template, resolve
from policies.wildcard import Chunk, FullMatcher, compile_chunks, compile_patterns, compile_source

__all__ = ["CompiledPolicy", "CompiledStatement", "Reach", "compile_policy"]

_ACTION_MEMO_LIMIT = 1024


class Reach(IntEnum):
    """How a resource-policy statement's principal element covers the caller."""

    NONE = 0
    ACCOUNT = 1  # only through the caller's account: still needs an identity allow (§3.2)
    DIRECT = 2  # the caller itself, its role, a service, or "*"


@dataclass(frozen=True, eq=False)
class PrincipalMatcher:
    everyone: bool
    accounts: frozenset[str]
    arns: frozenset[str]
    roles: frozenset[tuple[str, str]]
    services: frozenset[str]
    negated: bool

    def reach(self, p: Principal) -> Reach:
        """How this `Principal` (or, negated, `NotPrincipal`) element covers `p`."""
        if self.negated:
            return Reach.NONE if self._excludes(p) else Reach.DIRECT
        if self.everyone:
            return Reach.DIRECT
        if p.type is PrincipalType.ANONYMOUS:
            return Reach.NONE
        if p.type is PrincipalType.SERVICE:
            return Reach.DIRECT if p.arn in self.services else Reach.NONE
        if p.arn in self.arns or (p.role_name is not None and (p.account, p.role_name) in self.roles):
            return Reach.DIRECT
        return Reach.ACCOUNT if p.account in self.accounts else Reach.NONE

    def _excludes(self, p: Principal) -> bool:
        # NotPrincipal spares a caller only when every identity it acts as is listed: the
        # account, and the user, or the role and its session (§2.5).
        if self.everyone:
            return True
        if p.type is PrincipalType.ANONYMOUS:
            return False
        if p.type is PrincipalType.SERVICE:
            return p.arn in self.services
        if p.account not in self.accounts:
            return False
        if p.type is PrincipalType.ACCOUNT:
            return True
        if p.role_name is not None:
            role_listed = (p.account, p.role_name) in self.roles
            return role_listed and (":sts::" not in p.arn or p.arn in self.arns)
        return p.arn in self.arns


def _compile_principal(block: PrincipalBlock) -> PrincipalMatcher:
    everyone, accounts, arns, roles, services = False, set(), set(), set(), set()
    for kind, values in block.entries:
        for value in values:
            ref = parse_principal_ref(value, service=kind == "Service")
            if kind not in ("AWS", "Service") or ref is None:
                continue  # Federated/CanonicalUser principals never name a Berth caller
            if ref.kind is RefKind.EVERYONE:
                everyone = True
            elif ref.kind is RefKind.SERVICE:
                services.add(ref.name)
            elif ref.kind is RefKind.ACCOUNT:
                accounts.add(ref.account)
            elif ref.kind is RefKind.ROLE:
                # By account and name: a session ARN (assumed-role/<name>/<session>) carries
                # no role path, so the path cannot take part in matching.
                roles.add((ref.account, ref.name))
            else:
                arns.add(ref.arn)
    return PrincipalMatcher(
        everyone, frozenset(accounts), frozenset(arns), frozenset(roles), frozenset(services), block.negated
    )


@dataclass(frozen=True, eq=False)
class ResourceMatcher:
    match_all: bool  # a "*" pattern
    static: FullMatcher | None  # every pattern without variables, OR'ed
    templates: tuple[PatternTemplate, ...]  # patterns with variables, resolved per request
    negated: bool
    superset: re.Pattern[str] | None = None  # the templates with variables widened to `.*`

    def matches(self, resource: str, context: Mapping[str, tuple[str, ...]]) -> bool:
        """Whether the `Resource`/`NotResource` element applies to `resource`."""
        hit = self.match_all or (self.static is not None and self.static.match(resource) is not None)
        if not hit and self.templates:
            hit = self.matches_dynamic(resource, context)
        return hit is not self.negated

    def matches_dynamic(self, resource: str, context: Mapping[str, tuple[str, ...]]) -> bool:
        """Whether a pattern with variables matches; a null variable drops its pattern — it
        "will not match any resource" (§6)."""
        if self.superset is not None and self.superset.match(resource) is None:
            return False
        return match_templates(self.templates, resource, context)


def _compile_resource(patterns: Patterns, *, variables: bool) -> ResourceMatcher:
    match_all = "*" in patterns.values
    static: list[tuple[Chunk, ...]] = []
    dynamic: list[PatternTemplate] = []
    for value in patterns.values:
        if value == "*":
            continue
        template = parse_template(value, enabled=variables)
        if has_variables(template):
            dynamic.append(compile_pattern_template(template, arn=True))
        else:
            static.append(resolve(template, {}) or ())
    widened = [w for t in dynamic if (w := t.superset_source()) is not None]
    superset = compile_source("|".join(widened), False) if dynamic and len(widened) == len(dynamic) else None
    return ResourceMatcher(match_all, compile_chunks(static, arn=True), tuple(dynamic), patterns.negated, superset)


@dataclass(frozen=True, eq=False)
class CompiledStatement:
    """One statement in matcher form; `ref` is what a decision reports about it."""

    ref: MatchedStatement
    is_deny: bool
    action: FullMatcher | None
    action_negated: bool
    resource: ResourceMatcher | None  # None: resource policy without Resource (the resource itself)
    principal: PrincipalMatcher | None
    conditions: tuple[CompiledCondition, ...]
    # `applies(resource, context, errors) -> bool` checks the resource and every condition (the
    # action and principal are checked before). It is a closure built once per statement, not
    # a method: it runs for every action-matching statement of every request, and closure
    # variables are cheaper to reach than attributes.
    applies: Callable[[str, Mapping[str, tuple[str, ...]], list[str]], bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "applies", _applies_function(self.resource, self.conditions))

    def matches_action(self, action_key: str) -> bool:
        hit = self.action is not None and self.action.match(action_key) is not None
        return hit is not self.action_negated


def _applies_function(
    r: ResourceMatcher | None, conditions: tuple[CompiledCondition, ...]
) -> Callable[[str, Mapping[str, tuple[str, ...]], list[str]], bool]:
    tests = tuple(c.test for c in conditions)

    def conditions_hold(context: Mapping[str, tuple[str, ...]], errors: list[str]) -> bool:
        for test in tests:
            if not test(context, errors):
                return False
        return True

    if r is None or (r.match_all and not r.negated):
        return lambda resource, context, errors: conditions_hold(context, errors)
    if r.static is not None and not r.templates and not r.match_all:
        static_match, negated = r.static.match, r.negated

        def static_applies(resource: str, context: Mapping[str, tuple[str, ...]], errors: list[str]) -> bool:
            if (static_match(resource) is not None) is negated:
                return False
            return not tests or conditions_hold(context, errors)

        return static_applies

    def general_applies(resource: str, context: Mapping[str, tuple[str, ...]], errors: list[str]) -> bool:
        return r.matches(resource, context) and conditions_hold(context, errors)

    return general_applies


class CompiledPolicy:
    """The statements of one policy in matcher form."""

    def __init__(self, policy: Policy, statements: tuple[CompiledStatement, ...]) -> None:
        self.name = policy.name
        self.kind = policy.kind
        self.statements = statements
        self._by_action: dict[str, tuple[CompiledStatement, ...]] = {}

    def statements_for(self, action_key: str) -> tuple[CompiledStatement, ...]:
        """The statements whose Action/NotAction matches `action_key` (lower-cased)."""
        hit = self._by_action.get(action_key)
        if hit is None:
            hit = tuple(s for s in self.statements if s.matches_action(action_key))
            if len(self._by_action) >= _ACTION_MEMO_LIMIT:
                self._by_action.clear()
            self._by_action[action_key] = hit
        return hit


def _compile_statement(policy: Policy, st: Statement) -> CompiledStatement:
    where = f"{policy.name}: Statement[{st.index}].Condition"
    conditions = []
    for c in st.conditions:
        op = parse_operator(c.operator)
        if op is None:
            raise ValueError(f"{where}.{c.operator}: unsupported condition operator")
        conditions.append(
            compile_condition(c, op, variables=policy.variables_enabled, where=f"{where}.{c.operator}.{c.key}")
        )
    return CompiledStatement(
        ref=MatchedStatement(policy.name, policy.kind.value, st.index, st.sid, st.effect.value),
        is_deny=st.effect is Effect.DENY,
        action=compile_patterns(st.action.values, ignore_case=True),
        action_negated=st.action.negated,
        resource=None if st.resource is None else _compile_resource(st.resource, variables=policy.variables_enabled),
        principal=None if st.principal is None else _compile_principal(st.principal),
        conditions=tuple(conditions),
    )


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile a policy. Prefer `policy.compiled`, which compiles once and keeps the result.

    Raises:
        ValueError: the model holds something the parser would have rejected.
    """
    return CompiledPolicy(policy, tuple(_compile_statement(policy, st) for st in policy.statements))
