"""Properties of the evaluator and the model, checked with hypothesis over a small policy
vocabulary (so that generated statements actually apply to generated requests):

- adding a Deny statement never turns a denied request into an allowed one;
- adding an Allow statement never turns an allowed request into a denied one, and never
  lifts an explicit deny;
- the order of statements and of policies never changes the decision or its deciding statements;
- rendering then parsing a policy gives the same policy;
- an unmet condition never denies: without Deny statements there is no explicit deny.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import (
    ALLOWED,
    EXPLICIT_DENY,
    Decision,
    Policy,
    PolicyKind,
    Principal,
    Request,
    dumps,
    evaluate,
    parse_policy,
    render_policy,
)

A, B = "111111111111", "222222222222"
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ACTION_PATTERNS = ["ecr:*", "ecr:BatchGetImage", "ecr:Batch*", "ecr:PutImage", "ecr:Put*", "ecr:*Image",
                   "ecr:Get?ownloadUrlForLayer", "*", "ecs:RunTask", "ECR:batchgetimage"]
ACTIONS = ["ecr:BatchGetImage", "ecr:PutImage", "ecr:GetDownloadUrlForLayer", "ecr:DeleteRepository", "ecs:RunTask"]
RESOURCE_PATTERNS = ["*", f"arn:aws:ecr:us-east-1:{A}:repository/*", f"arn:aws:ecr:*:{A}:repository/app",
                     f"arn:aws:ecr:us-east-1:{B}:repository/*", f"arn:aws:ecr:us-east-1:{A}:repository/${{aws:username}}/*",
                     "arn:aws:ecr:*:*:repository/team-?/*", f"arn:aws:ecr:us-east-1:{B}:repository/app.v1"]
RESOURCES = ["*", f"arn:aws:ecr:us-east-1:{A}:repository/app", f"arn:aws:ecr:us-east-1:{A}:repository/alice/x",
             f"arn:aws:ecr:us-east-1:{A}:repository/team-a/x", f"arn:aws:ecr:us-east-1:{B}:repository/app",
             f"arn:aws:ecr:us-east-1:{B}:repository/app.v1", f"arn:aws:ecr:us-east-1:{B}:repository/team-b/y"]
CONDITIONS: list[dict[str, dict[str, Any]]] = [
    {"StringEquals": {"aws:username": "alice"}},
    {"StringNotEquals": {"aws:PrincipalTag/team": "red"}},
    {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}},
    {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"NumericLessThan": {"test:n": "5"}},
    {"ForAnyValue:StringLike": {"aws:TagKeys": "t*"}},
    {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}},
    {"Null": {"aws:TokenIssueTime": "true"}},
    {"StringLikeIfExists": {"test:s": "a*"}},
    {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
    {"StringEquals": {"test:s": "${aws:PrincipalTag/team}"}},
    {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:*"}},
]
PRINCIPAL_ELEMENTS: list[Any] = ["*", {"AWS": A}, {"AWS": f"arn:aws:iam::{A}:user/alice"}, {"AWS": f"arn:aws:iam::{B}:root"},
                                 {"AWS": [f"arn:aws:iam::{A}:role/ci", f"arn:aws:iam::{B}:user/carol"]},
                                 {"Service": "codebuild.amazonaws.com"}, {"AWS": f"arn:aws:sts::{A}:assumed-role/ci/build"}]
CALLERS = [f"arn:aws:iam::{A}:user/alice", f"arn:aws:iam::{A}:user/bob", f"arn:aws:iam::{B}:user/carol",
           f"arn:aws:sts::{A}:assumed-role/ci/build", "anonymous", A, "codebuild.amazonaws.com"]
CONTEXT_CHOICES: dict[str, list[Any]] = {
    "aws:SourceIp": ["10.1.1.1", "192.0.2.1", "2001:db8::5", "bogus"],
    "aws:SecureTransport": ["true", "false"],
    "test:n": ["3", "7", "x"],
    "aws:TagKeys": [[], ["team"], ["team", "x"], ["env", "team"]],
    "test:s": ["abc", "xyz", "red"],
    "aws:TokenIssueTime": ["2024-01-01T00:00:00Z"],
}


def _merge(clauses: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for clause in clauses:
        for op, block in clause.items():
            merged.setdefault(op, {}).update(block)
    return merged


@st.composite
def statements(draw: st.DrawFn, *, kind: PolicyKind, effect: str | None = None) -> dict[str, Any]:
    eff = effect or draw(st.sampled_from(["Allow", "Deny"]))
    out: dict[str, Any] = {"Effect": eff}
    actions = draw(st.lists(st.sampled_from(ACTION_PATTERNS), min_size=1, max_size=3, unique=True))
    out["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = actions if len(actions) > 1 else actions[0]
    if kind is PolicyKind.IDENTITY or draw(st.booleans()):
        resources = draw(st.lists(st.sampled_from(RESOURCE_PATTERNS), min_size=1, max_size=2, unique=True))
        out["NotResource" if draw(st.integers(0, 5)) == 0 else "Resource"] = resources
    if kind is PolicyKind.RESOURCE:
        principal = draw(st.sampled_from(PRINCIPAL_ELEMENTS))
        out["NotPrincipal" if eff == "Deny" and principal != "*" and draw(st.integers(0, 4)) == 0 else "Principal"] = principal
    clauses = draw(st.lists(st.sampled_from(CONDITIONS), max_size=2))
    if clauses:
        out["Condition"] = _merge(clauses)
    return out


def document(statement_list: list[dict[str, Any]], version: str = "2012-10-17") -> dict[str, Any]:
    # Unique alphanumeric Sids let deciding statements be compared after reordering.
    return {"Version": version, "Statement": [{"Sid": f"S{i}", **s} for i, s in enumerate(statement_list)]}


policy_docs = {
    kind: st.lists(statements(kind=kind), min_size=1, max_size=4).map(document) for kind in PolicyKind
}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Request, list[dict[str, Any]], list[dict[str, Any]]]:
    caller = draw(st.sampled_from(CALLERS))
    tags = draw(st.sampled_from([{}, {"team": "red"}, {"team": "abc"}]))
    keys = draw(st.lists(st.sampled_from(sorted(CONTEXT_CHOICES)), unique=True))
    context = {k: draw(st.sampled_from(CONTEXT_CHOICES[k])) for k in keys}
    request = Request(
        Principal.from_arn(caller, tags=tags), draw(st.sampled_from(ACTIONS)), draw(st.sampled_from(RESOURCES)),
        context=context, now=datetime(2025, 1, 1, tzinfo=UTC),
    )
    identity_docs = draw(st.lists(policy_docs[PolicyKind.IDENTITY], max_size=3))
    resource_docs = draw(st.lists(policy_docs[PolicyKind.RESOURCE], max_size=2))
    return request, identity_docs, resource_docs


def parse_all(docs: list[dict[str, Any]], kind: PolicyKind, prefix: str) -> list[Policy]:
    return [parse_policy(d, kind=kind, name=f"{prefix}{i}") for i, d in enumerate(docs)]


def decide(request: Request, identity_docs: list[dict[str, Any]], resource_docs: list[dict[str, Any]]) -> Decision:
    return evaluate(request, parse_all(identity_docs, PolicyKind.IDENTITY, "id"), parse_all(resource_docs, PolicyKind.RESOURCE, "res"))


def with_statement(docs: list[dict[str, Any]], index: int, statement: dict[str, Any]) -> list[dict[str, Any]]:
    """`docs` with `statement` added to the policy at `index` (a new policy past the end)."""
    if index >= len(docs):
        return [*docs, document([statement])]
    target = docs[index]
    extra = {"Sid": "Added", **statement}
    return [*docs[:index], {**target, "Statement": [*target["Statement"], extra]}, *docs[index + 1 :]]


@SETTINGS
@given(scenarios(), st.data())
def test_adding_a_deny_never_turns_a_deny_into_an_allow(scenario: Any, data: st.DataObject) -> None:
    request, identity_docs, resource_docs = scenario
    before = decide(request, identity_docs, resource_docs)
    if data.draw(st.booleans()):
        added = data.draw(statements(kind=PolicyKind.IDENTITY, effect="Deny"))
        identity_docs = with_statement(identity_docs, data.draw(st.integers(0, len(identity_docs))), added)
    else:
        added = data.draw(statements(kind=PolicyKind.RESOURCE, effect="Deny"))
        resource_docs = with_statement(resource_docs, data.draw(st.integers(0, len(resource_docs))), added)
    after = decide(request, identity_docs, resource_docs)
    if before.decision != ALLOWED:
        assert after.decision != ALLOWED
    if before.decision == EXPLICIT_DENY:
        assert after.decision == EXPLICIT_DENY


@SETTINGS
@given(scenarios(), st.data())
def test_adding_an_allow_never_turns_an_allow_into_a_deny(scenario: Any, data: st.DataObject) -> None:
    request, identity_docs, resource_docs = scenario
    before = decide(request, identity_docs, resource_docs)
    if data.draw(st.booleans()):
        added = data.draw(statements(kind=PolicyKind.IDENTITY, effect="Allow"))
        identity_docs = with_statement(identity_docs, data.draw(st.integers(0, len(identity_docs))), added)
    else:
        added = data.draw(statements(kind=PolicyKind.RESOURCE, effect="Allow"))
        resource_docs = with_statement(resource_docs, data.draw(st.integers(0, len(resource_docs))), added)
    after = decide(request, identity_docs, resource_docs)
    if before.decision == ALLOWED:
        assert after.decision == ALLOWED
    if before.decision == EXPLICIT_DENY:
        assert after.decision == EXPLICIT_DENY


def _deciding(decision: Decision) -> set[tuple[str, str | None]]:
    return {(m.policy, m.sid) for m in decision.matched_statements}


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_statement_and_policy_order_never_change_the_decision(scenario: Any, rnd: random.Random) -> None:
    request, identity_docs, resource_docs = scenario
    before = decide(request, identity_docs, resource_docs)

    def shuffled(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for d in docs:
            items = list(d["Statement"])
            rnd.shuffle(items)
            out.append({**d, "Statement": items})
        return out

    # Policy names travel with their documents, so reorder (name, policy) pairs.
    identity = parse_all(shuffled(identity_docs), PolicyKind.IDENTITY, "id")
    resource = parse_all(shuffled(resource_docs), PolicyKind.RESOURCE, "res")
    rnd.shuffle(identity)
    rnd.shuffle(resource)
    after = evaluate(request, identity, resource)
    assert after.decision == before.decision
    assert after.reason == before.reason
    assert _deciding(after) == _deciding(before)
    # Errors name statement positions, which the shuffle changes; their number does not.
    assert len(after.errors) == len(before.errors)


@SETTINGS
@given(st.sampled_from(list(PolicyKind)), st.data(), st.sampled_from(["2012-10-17", "2008-10-17"]), st.booleans())
def test_render_then_parse_is_identity(kind: PolicyKind, data: st.DataObject, version: str, with_id: bool) -> None:
    doc = document(data.draw(st.lists(statements(kind=kind), min_size=1, max_size=5)), version)
    if with_id and kind is PolicyKind.RESOURCE:
        doc["Id"] = "policy-id"
    policy = parse_policy(doc, kind=kind, name="p")
    assert parse_policy(render_policy(policy), kind=kind, name="p") == policy
    assert parse_policy(dumps(policy), kind=kind, name="p") == policy
    assert render_policy(parse_policy(render_policy(policy), kind=kind, name="p")) == render_policy(policy)
    assert json.loads(dumps(policy, indent=None)) == render_policy(policy)


@SETTINGS
@given(scenarios())
def test_without_deny_statements_nothing_is_explicitly_denied(scenario: Any) -> None:
    request, identity_docs, resource_docs = scenario

    def allows_only(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [{**d, "Statement": [s for s in d["Statement"] if s["Effect"] == "Allow"]} for d in docs]
        return [d for d in kept if d["Statement"]]

    decision = decide(request, allows_only(identity_docs), allows_only(resource_docs))
    assert decision.decision != EXPLICIT_DENY
    assert all(m.effect == "Allow" for m in decision.matched_statements)


@SETTINGS
@given(scenarios())
def test_evaluation_is_pure(scenario: Any) -> None:
    request, identity_docs, resource_docs = scenario
    identity = parse_all(identity_docs, PolicyKind.IDENTITY, "id")
    resource = parse_all(resource_docs, PolicyKind.RESOURCE, "res")
    assert evaluate(request, identity, resource) == evaluate(request, identity, resource)
