"""The public API around evaluation: principals and request context, decision values and
denial messages, the compiled-policy cache, immutability and purity of the package."""

from __future__ import annotations

import ast
import dataclasses
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from policy_testkit import ACCOUNT, OTHER, REPO, USER, allow, deny, identity, resource

import policies
from policies import (
    Decision,
    MatchedStatement,
    PolicyCache,
    PolicyError,
    PolicyKind,
    Principal,
    PrincipalType,
    Reason,
    Request,
    evaluate,
)

PRINCIPALS = [
    # arn, type, account, username, role_name, aws:PrincipalArn
    (USER, PrincipalType.USER, ACCOUNT, "alice", None, USER),
    (f"arn:aws:iam::{ACCOUNT}:user/division/team/bob", PrincipalType.USER, ACCOUNT, "bob", None, f"arn:aws:iam::{ACCOUNT}:user/division/team/bob"),
    (f"arn:aws:iam::{ACCOUNT}:root", PrincipalType.ACCOUNT, ACCOUNT, None, None, f"arn:aws:iam::{ACCOUNT}:root"),
    (ACCOUNT, PrincipalType.ACCOUNT, ACCOUNT, None, None, f"arn:aws:iam::{ACCOUNT}:root"),
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/build-1", PrincipalType.ASSUMED_ROLE, ACCOUNT, None, "ci", f"arn:aws:iam::{ACCOUNT}:role/ci"),
    (f"arn:aws:iam::{ACCOUNT}:role/svc/ci", PrincipalType.ASSUMED_ROLE, ACCOUNT, None, "ci", f"arn:aws:iam::{ACCOUNT}:role/svc/ci"),
    (f"arn:aws:sts::{ACCOUNT}:federated-user/bob", PrincipalType.FEDERATED_USER, ACCOUNT, None, None, f"arn:aws:sts::{ACCOUNT}:federated-user/bob"),
    ("anonymous", PrincipalType.ANONYMOUS, "anonymous", None, None, None),
    ("codebuild.amazonaws.com", PrincipalType.SERVICE, "", None, None, None),
]


@pytest.mark.parametrize(("arn", "ptype", "account", "username", "role", "principal_arn"), PRINCIPALS)
def test_principal_from_arn(arn: str, ptype: PrincipalType, account: str, username: str | None, role: str | None, principal_arn: str | None) -> None:
    p = Principal.from_arn(arn)
    assert (p.type, p.account, p.username, p.role_name, p.principal_arn) == (ptype, account, username, role, principal_arn)


@pytest.mark.parametrize("bad", ["*", "alice", "arn:aws:iam::123:user/x", "arn:aws:s3:::bucket", f"arn:aws:iam::{ACCOUNT}:group/devs", ""])
def test_principal_from_arn_rejects_non_principals(bad: str) -> None:
    with pytest.raises(ValueError):
        Principal.from_arn(bad)


def test_request_context_keys() -> None:
    principal = Principal.from_arn(USER, userid="AIDAEXAMPLE", tags={"Team": "red"})
    request = Request(principal, "ECR:PutImage", REPO, context={"aws:SourceIp": "10.0.0.1", "AWS:TagKeys": ["a", "b"]},
                      now=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert request.action_key == "ecr:putimage"
    assert request.context_keys == {
        "aws:principaltype": ("User",),
        "aws:principalaccount": (ACCOUNT,),
        "aws:principalarn": (USER,),
        "aws:username": ("alice",),
        "aws:userid": ("AIDAEXAMPLE",),
        "aws:principaltag/team": ("red",),
        "aws:resourceaccount": (ACCOUNT,),
        "aws:currenttime": ("2025-01-02T03:04:05Z",),
        "aws:epochtime": ("1735787045",),
        "aws:sourceip": ("10.0.0.1",),
        "aws:tagkeys": ("a", "b"),
    }


def test_caller_context_wins_and_empty_values_remove_a_key() -> None:
    request = Request(Principal.from_arn(USER), "ecr:PutImage", REPO, context={"aws:username": "mallory", "aws:PrincipalArn": ()})
    assert request.context_keys["aws:username"] == ("mallory",)
    assert "aws:principalarn" not in request.context_keys


@pytest.mark.parametrize(("resource_arn", "explicit", "owner"), [
    (REPO, None, ACCOUNT),
    (f"arn:aws:ecr:us-east-1:{OTHER}:repository/x", None, OTHER),
    ("*", None, ACCOUNT),
    ("arn:aws:s3:::bucket/key", None, ACCOUNT),
    ("arn:aws:s3:::bucket/key", OTHER, OTHER),
])
def test_resource_account(resource_arn: str, explicit: str | None, owner: str) -> None:
    assert Request(Principal.from_arn(USER), "ecr:PutImage", resource_arn, resource_account=explicit).owner_account == owner


def _decision(decision: str, reason: Reason, resource_arn: str = REPO) -> Decision:
    return Decision(decision, reason, USER, "ecr:PutImage", resource_arn)


@pytest.mark.parametrize(("decision", "suffix"), [
    (_decision("implicitDeny", Reason.NO_IDENTITY_ALLOW), "because no identity-based policy allows the ecr:PutImage action"),
    (_decision("implicitDeny", Reason.NO_RESOURCE_ALLOW), "because no resource-based policy allows the ecr:PutImage action"),
    (_decision("explicitDeny", Reason.EXPLICIT_DENY_IDENTITY), "with an explicit deny in an identity-based policy"),
    (_decision("explicitDeny", Reason.EXPLICIT_DENY_RESOURCE), "with an explicit deny in a resource-based policy"),
])
def test_denial_messages(decision: Decision, suffix: str) -> None:
    assert decision.denial_message() == f"User: {USER} is not authorized to perform: ecr:PutImage on resource: {REPO} {suffix}"


def test_allowed_has_no_denial_message() -> None:
    with pytest.raises(ValueError):
        _decision("allowed", Reason.IDENTITY_ALLOW).denial_message()


def test_decision_json() -> None:
    matched = MatchedStatement("p", "identity", 2, "Sid1", "Allow")
    decision = Decision("allowed", Reason.IDENTITY_ALLOW, USER, "ecr:PutImage", REPO, (matched,), ("e",))
    assert decision.to_json() == {
        "decision": "allowed",
        "matchedStatements": [{"policy": "p", "policyType": "identity", "index": 2, "sid": "Sid1", "effect": "Allow"}],
        "errors": ["e"],
    }


def test_evaluation_errors_do_not_stop_other_statements() -> None:
    policy = identity(allow("ecr:*", "*", Condition={"NumericLessThan": {"test:n": "5"}}), allow("ecr:PutImage", REPO), name="p")
    decision = evaluate(Request(Principal.from_arn(USER), "ecr:PutImage", REPO, context={"test:n": "five"}), [policy])
    assert decision.allowed
    assert [m.index for m in decision.matched_statements] == [1]
    assert decision.errors == ("p: Statement[0].Condition.NumericLessThan.test:n: request value 'five' is not a number",)


def test_deny_statement_with_unmet_condition_does_not_deny() -> None:
    policy = identity(allow(), deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))
    decision = evaluate(Request(Principal.from_arn(USER), "ecr:PutImage", REPO, context={"aws:SecureTransport": "true"}), [policy])
    assert decision.allowed


def test_odd_requests_never_raise() -> None:
    policy = identity(allow("ecr:*", f"arn:aws:ecr:*:{ACCOUNT}:repository/${{aws:username}}/*"))
    for resource_arn in ["", "not-an-arn", "arn:", "*", "arn:aws:ecr:us-east-1::repository/", "\n"]:
        decision = evaluate(Request(Principal.anonymous(), "", resource_arn), [policy], [resource({"Effect": "Deny", "Principal": "*", "Action": "*"})])
        assert decision.decision in ("allowed", "explicitDeny", "implicitDeny")


def test_cache_returns_compiled_policies_and_evicts_least_recently_used() -> None:
    cache = PolicyCache(maxsize=2)
    text_a = '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}}'
    text_b = text_a.replace("Allow", "Deny")
    text_c = text_a.replace('"*"}', '"arn:aws:ecr:*:*:repository/x"}')
    a = cache.get(text_a, kind=PolicyKind.IDENTITY, name="a")
    assert cache.get(text_a, kind=PolicyKind.IDENTITY, name="a") is a
    assert (cache.hits, cache.misses) == (1, 1)
    cache.get(text_b, kind=PolicyKind.IDENTITY, name="b")
    cache.get(text_a, kind=PolicyKind.IDENTITY, name="a")  # a is now the most recently used
    cache.get(text_c, kind=PolicyKind.IDENTITY, name="c")  # evicts b
    assert len(cache) == 2
    assert cache.get(text_a, kind=PolicyKind.IDENTITY, name="a") is a
    misses = cache.misses
    cache.get(text_b, kind=PolicyKind.IDENTITY, name="b")
    assert cache.misses == misses + 1
    assert cache.get(text_a, kind=PolicyKind.IDENTITY, name="renamed") is not a  # the name is part of the key
    cache.clear()
    assert len(cache) == 0


def test_cache_does_not_keep_invalid_documents() -> None:
    cache = PolicyCache()
    for _ in range(2):
        with pytest.raises(PolicyError):
            cache.get('{"Statement": []}', kind=PolicyKind.IDENTITY, name="x")
    assert len(cache) == 0 and cache.misses == 2


def test_cache_is_thread_safe() -> None:
    cache = PolicyCache(maxsize=8)
    texts = [f'{{"Version": "2012-10-17", "Statement": {{"Sid": "S{i}", "Effect": "Allow", "Action": "ecr:*", "Resource": "*"}}}}' for i in range(16)]
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                for t in texts:
                    assert cache.get(t, kind=PolicyKind.IDENTITY, name="t").statements[0].sid == t.split('"Sid": "')[1].split('"')[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(cache) == 8


def test_model_is_immutable() -> None:
    policy = identity(allow())
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.statements[0].effect = "Deny"  # type: ignore[misc]
    assert isinstance(policy.statements, tuple) and isinstance(policy.statements[0].action.values, tuple)
    assert hash(policy) == hash(identity(allow()))


def test_compiled_form_is_kept_out_of_equality() -> None:
    a, b = identity(allow()), identity(allow())
    assert a.compiled is not b.compiled
    assert a == b


PACKAGE = Path(policies.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted(p.name for p in PACKAGE.glob("*.py")))
def test_package_is_pure(module: str) -> None:
    """Standard library only, nothing else of ours, and no I/O outside the CLI."""
    path = PACKAGE / module
    foreign = {m for m in _imports(path) - {"policies", "__future__"} if m not in sys.stdlib_module_names}
    assert foreign == set()
    if module not in ("cli.py", "__main__.py"):
        calls = {n.func.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not calls & {"open", "print", "input"}
        assert not _imports(path) & {"os", "io", "socket", "subprocess", "pathlib", "time", "asyncio"}


def test_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert max(sizes.values()) <= 400, sizes
