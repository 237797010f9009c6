"""Condition operators as tables: every operator family, IfExists, set qualifiers, the
missing-key rules, unparseable request values and policy variables in condition values.

Each row evaluates one Allow statement carrying one condition clause: the request is allowed
exactly when the clause holds.
"""

from __future__ import annotations

from typing import Any

import pytest
from policy_testkit import USER

from policies import PolicyKind, Principal, Request, evaluate, parse_policy

KEY = "test:key"
ABSENT = None


def check(
    operator: str,
    policy_values: Any,
    request_values: Any,
    *,
    version: str | None = "2012-10-17",
    principal: str = USER,
    tags: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[bool, tuple[str, ...]]:
    """Whether the clause holds, and the evaluation errors."""
    statement = {"Effect": "Allow", "Action": "ecr:ListImages", "Resource": "*", "Condition": {operator: {KEY: policy_values}}}
    document: dict[str, Any] = {"Statement": [statement]}
    if version:
        document["Version"] = version
    policy = parse_policy(document, kind=PolicyKind.IDENTITY, name="c")
    ctx = dict(context or {})
    if request_values is not ABSENT:
        ctx[KEY] = request_values
    req = Request(Principal.from_arn(principal, tags=tags), "ecr:ListImages", "*", context=ctx)
    decision = evaluate(req, [policy])
    return decision.allowed, decision.errors


# (operator, policy values, request values or ABSENT, expected)
OPERATORS = [
    ("StringEquals", "abc", "abc", True),
    ("StringEquals", "abc", "ABC", False),
    ("StringEquals", ["x", "abc"], "abc", True),
    ("StringEquals", "abc", "abcd", False),
    ("StringNotEquals", "abc", "abc", False),
    ("StringNotEquals", "abc", "abd", True),
    ("StringNotEquals", ["a", "b"], "b", False),
    ("StringNotEquals", ["a", "b"], "c", True),
    ("StringEqualsIgnoreCase", "AbC", "aBc", True),
    ("StringEqualsIgnoreCase", "AbC", "abd", False),
    ("StringNotEqualsIgnoreCase", "AbC", "abc", False),
    ("StringNotEqualsIgnoreCase", "AbC", "x", True),
    ("StringLike", "ab*", "abcdef", True),
    ("StringLike", "ab*", "ab", True),
    ("StringLike", "a?c", "abc", True),
    ("StringLike", "a?c", "abbc", False),
    ("StringLike", "a.c", "abc", False),
    ("StringLike", "a*", "A", False),
    ("StringLike", "*", "", True),
    ("StringLike", "(x)+[y]", "(x)+[y]", True),
    ("StringLike", "(x)+", "xx", False),
    ("StringLike", "a*z", "a/b:c\nz", True),
    ("StringNotLike", "ab*", "abc", False),
    ("StringNotLike", "ab*", "xy", True),
    ("NumericEquals", "10", "10", True),
    ("NumericEquals", "10", "10.0", True),
    ("NumericEquals", "1e2", "100", True),
    ("NumericEquals", 10, "11", False),
    ("NumericNotEquals", "10", "10", False),
    ("NumericNotEquals", "10", "11", True),
    ("NumericLessThan", "10", "9", True),
    ("NumericLessThan", "10", "10", False),
    ("NumericLessThan", "-1", "-2", True),
    ("NumericLessThanEquals", "10", "10", True),
    ("NumericLessThanEquals", "10", "11", False),
    ("NumericGreaterThan", "10", "11", True),
    ("NumericGreaterThan", "10", "10", False),
    ("NumericGreaterThan", "0.5", "0.75", True),
    ("NumericGreaterThanEquals", "10", "10", True),
    ("NumericGreaterThanEquals", "10", "9", False),
    ("DateEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
    ("DateEquals", "2020-01-01T00:00:00Z", "1577836800", True),
    ("DateEquals", "2020-01-01T00:00:00Z", "2020-01-01T01:00:00+01:00", True),
    ("DateEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z", False),
    ("DateNotEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
    ("DateNotEquals", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", True),
    ("DateLessThan", "2020-01-01T00:00:00Z", "2019-12-31T23:59:59Z", True),
    ("DateLessThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
    ("DateLessThanEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
    ("DateGreaterThan", "2020-01-01", "2020-01-01T00:00:01Z", True),
    ("DateGreaterThan", "2020-01-01", "2019-06-01", False),
    ("DateGreaterThanEquals", 1577836800, "2020-01-01T00:00:00Z", True),
    ("DateGreaterThanEquals", "1577836800", "2019-12-31T23:59:59.999Z", False),
    ("Bool", "true", "true", True),
    ("Bool", "true", "false", False),
    ("Bool", False, "false", True),
    ("Bool", "false", "FALSE", True),
    ("BinaryEquals", "QmluYXJ5", "QmluYXJ5", True),
    ("BinaryEquals", "QmluYXJ5", "QmluYXJ6", False),
    ("IpAddress", "10.0.0.0/8", "10.255.0.1", True),
    ("IpAddress", "10.0.0.0/8", "11.0.0.1", False),
    ("IpAddress", "2001:db8::/32", "2001:db8::1", True),
    ("IpAddress", "2001:DB8::/32", "2001:db9::1", False),
    ("IpAddress", "10.0.0.0/8", "2001:db8::1", False),
    ("IpAddress", "192.0.2.7", "192.0.2.7", True),
    ("IpAddress", "192.0.2.7", "192.0.2.8", False),
    ("IpAddress", "10.1.2.3/8", "10.9.9.9", True),
    ("NotIpAddress", "10.0.0.0/8", "10.1.1.1", False),
    ("NotIpAddress", "10.0.0.0/8", "11.1.1.1", True),
    ("NotIpAddress", ["10.0.0.0/8", "192.168.0.0/16"], "192.168.1.1", False),
    ("ArnEquals", "arn:aws:s3:::bucket", "arn:aws:s3:::bucket", True),
    ("ArnEquals", "arn:aws:iam::*:role/x", "arn:aws:iam::123456789012:role/x", True),
    ("ArnLike", "arn:aws:iam::123456789012:*", "arn:aws:iam::123456789012:user/a/b", True),
    ("ArnLike", "arn:aws:someservice:*:111122223333:finance/*", "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt", False),
    ("ArnLike", "arn:aws:ec?:*:*:repository/app", "arn:aws:ecr:us-east-1:123456789012:repository/app", True),
    ("ArnLike", "arn:aws:ecr:*:*:repository/app", "not-an-arn", False),
    ("ArnLike", "arn:aws:ecr:*:*:*", "arn:aws:ecr:us-east-1:123456789012", False),
    ("ArnNotEquals", "arn:aws:s3:::bucket", "arn:aws:s3:::bucket", False),
    ("ArnNotEquals", "arn:aws:s3:::bucket", "arn:aws:s3:::other", True),
    ("ArnNotLike", "arn:aws:iam::*:role/*", "arn:aws:iam::123456789012:role/ci", False),
    ("ArnNotLike", "arn:aws:iam::*:role/*", "arn:aws:iam::123456789012:user/ci", True),
    ("Null", "true", ABSENT, True),
    ("Null", "true", "x", False),
    ("Null", "false", "x", True),
    ("Null", "false", ABSENT, False),
    ("Null", "true", [], True),
    ("Null", True, ABSENT, True),
    # a single-valued operator against several request values: some value (positive) / no value (negated)
    ("StringEquals", "a", ["a", "b"], True),
    ("StringNotEquals", "a", ["a", "b"], False),
    ("StringNotEquals", "a", ["b", "c"], True),
    # set qualifiers
    ("ForAnyValue:StringLike", "a*", ["x", "ab"], True),
    ("ForAnyValue:StringLike", "a*", ["x", "y"], False),
    ("ForAnyValue:StringLike", "a*", [], False),
    ("ForAllValues:StringLike", "a*", ["ab", "ac"], True),
    ("ForAllValues:StringLike", "a*", ["ab", "x"], False),
    ("ForAllValues:StringLike", "a*", [], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "2"], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "20"], False),
    ("ForAnyValue:IpAddress", "10.0.0.0/8", ["192.0.2.1", "10.0.0.1"], True),
    ("ForAnyValue:StringNotEquals", ["a", "b"], ["a", "c"], True),
    ("ForAnyValue:StringNotEquals", ["a", "b"], ["a", "b"], False),
    ("ForAllValues:StringNotLike", "key1*", ["key2", "key3"], True),
    ("ForAllValues:StringNotLike", "key1*", ["key1", "key3"], False),
    ("ForAnyValue:StringEqualsIfExists", "a", ABSENT, True),
    ("ForAnyValue:StringEqualsIfExists", "a", ["b"], False),
]


@pytest.mark.parametrize(("operator", "policy_values", "request_values", "expected"), OPERATORS)
def test_operator(operator: str, policy_values: Any, request_values: Any, expected: bool) -> None:
    holds, errors = check(operator, policy_values, request_values)
    assert holds is expected
    assert errors == ()


# One valid policy value and one matching request value per base operator, from the
# operator list in iam-policy-evaluation.md §4.3.
SAMPLES = {
    "StringEquals": ("a", "a"), "StringNotEquals": ("a", "b"), "StringEqualsIgnoreCase": ("a", "A"),
    "StringNotEqualsIgnoreCase": ("a", "b"), "StringLike": ("a*", "ab"), "StringNotLike": ("a*", "b"),
    "NumericEquals": ("1", "1"), "NumericNotEquals": ("1", "2"), "NumericLessThan": ("2", "1"),
    "NumericLessThanEquals": ("1", "1"), "NumericGreaterThan": ("1", "2"), "NumericGreaterThanEquals": ("1", "1"),
    "DateEquals": ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"), "DateNotEquals": ("2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"),
    "DateLessThan": ("2020-01-01T00:00:00Z", "2019-01-01T00:00:00Z"), "DateLessThanEquals": ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
    "DateGreaterThan": ("2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"), "DateGreaterThanEquals": ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
    "Bool": ("true", "true"), "BinaryEquals": ("QQ==", "QQ=="), "IpAddress": ("10.0.0.0/8", "10.0.0.1"),
    "NotIpAddress": ("10.0.0.0/8", "11.0.0.1"), "ArnEquals": ("arn:aws:s3:::b", "arn:aws:s3:::b"),
    "ArnLike": ("arn:aws:s3:::b*", "arn:aws:s3:::bc"), "ArnNotEquals": ("arn:aws:s3:::b", "arn:aws:s3:::c"),
    "ArnNotLike": ("arn:aws:s3:::b*", "arn:aws:s3:::c"),
}
# §4.2: on a missing key every operator is false except these, which are true.
NEGATED = {
    "StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals",
    "DateNotEquals", "ArnNotEquals", "ArnNotLike", "NotIpAddress",
}


@pytest.mark.parametrize("operator", sorted(SAMPLES))
def test_missing_key_rules(operator: str) -> None:
    policy_value, present = SAMPLES[operator]
    assert check(operator, policy_value, ABSENT)[0] is (operator in NEGATED), "plain operator on a missing key"
    assert check(operator, policy_value, [])[0] is (operator in NEGATED), "a key present with no values counts as missing"
    assert check(f"{operator}IfExists", policy_value, ABSENT)[0] is True, "IfExists on a missing key"
    assert check(f"ForAllValues:{operator}", policy_value, ABSENT)[0] is True, "ForAllValues on a missing key"
    assert check(f"ForAnyValue:{operator}", policy_value, ABSENT)[0] is False, "ForAnyValue on a missing key"


@pytest.mark.parametrize("operator", sorted(SAMPLES))
def test_if_exists_compares_a_present_key(operator: str) -> None:
    policy_value, present = SAMPLES[operator]
    assert check(operator, policy_value, present)[0] is True
    assert check(f"{operator}IfExists", policy_value, present)[0] is True


UNPARSEABLE = [
    ("NumericEquals", "1", "one", "is not a number"),
    ("NumericNotEquals", "1", "one", "is not a number"),
    ("NumericLessThan", "1", "NaN", "is not a number"),
    ("DateLessThan", "2020-01-01", "tomorrow", "is not an ISO 8601 date or epoch seconds"),
    ("DateNotEquals", "2020-01-01", "tomorrow", "is not an ISO 8601 date or epoch seconds"),
    ("Bool", "true", "yes", 'is not "true" or "false"'),
    ("BinaryEquals", "QQ==", "***", "is not base64"),
    ("IpAddress", "10.0.0.0/8", "not-an-ip", "is not an IP address"),
    ("NotIpAddress", "10.0.0.0/8", "999.1.1.1", "is not an IP address"),
    ("ForAllValues:NumericLessThan", "5", ["1", "x"], "is not a number"),
    ("ForAnyValue:NumericLessThan", "5", ["x", "1"], "is not a number"),
]


@pytest.mark.parametrize(("operator", "policy_value", "request_value", "complaint"), UNPARSEABLE)
def test_unparseable_request_value_makes_the_clause_false(operator: str, policy_value: str, request_value: Any, complaint: str) -> None:
    holds, errors = check(operator, policy_value, request_value)
    assert holds is False  # even for negated operators: never a match, never a crash
    (error,) = errors
    assert error.startswith(f"c: Statement[0].Condition.{operator}.{KEY}: request value ")
    assert error.endswith(complaint)


VARIABLES = [
    ("user name", "StringEquals", "${aws:username}", "alice", {}, True),
    ("user name prefix", "StringLike", "${aws:username}-*", "alice-dev", {}, True),
    ("other user's prefix", "StringLike", "${aws:username}-*", "bob-dev", {}, False),
    ("null variable: StringEquals false", "StringEquals", "${aws:PrincipalTag/none}", "x", {}, False),
    ("null variable: StringNotEquals true", "StringNotEquals", "${aws:PrincipalTag/none}", "x", {}, True),
    ("null variable: StringLike false", "StringLike", "${aws:PrincipalTag/none}*", "x", {}, False),
    ("null variable: StringNotLike true", "StringNotLike", "${aws:PrincipalTag/none}*", "x", {}, True),
    ("one null value among several", "StringEquals", ["${aws:PrincipalTag/none}", "x"], "x", {}, True),
    ("default value", "StringEquals", "${aws:PrincipalTag/none, 'fallback'}", "fallback", {}, True),
    ("multivalued key is not a variable", "StringEquals", "${aws:TagKeys}", "a", {"aws:TagKeys": ["a", "b"]}, False),
    ("single value of a list key resolves", "StringEquals", "${aws:TagKeys}", "a", {"aws:TagKeys": ["a"]}, True),
    ("resolved value is literal under Like", "StringLike", "${aws:PrincipalTag/p}", "aXb", {}, False),
    ("escape ${*} is a literal star", "StringLike", "a${*}", "ab", {}, False),
    ("escape ${*} matches a star", "StringLike", "a${*}", "a*", {}, True),
    ("variable in Bool", "Bool", "${aws:PrincipalTag/tls}", "true", {}, True),
    ("variable key is case-insensitive", "StringEqualsIgnoreCase", "${AWS:USERNAME}", "ALICE", {}, True),
    ("variable in ArnLike account component", "ArnLike", "arn:aws:iam::${aws:PrincipalAccount}:user/*", "arn:aws:iam::123456789012:user/x", {}, True),
]


@pytest.mark.parametrize(("operator", "policy_value", "request_value", "context", "expected"),
                         [pytest.param(*row[1:], id=row[0]) for row in VARIABLES])
def test_variables_in_condition_values(operator: str, policy_value: Any, request_value: str, context: dict[str, Any], expected: bool) -> None:
    holds, errors = check(operator, policy_value, request_value, tags={"p": "a.b", "tls": "true"}, context=context)
    assert holds is expected
    assert errors == ()


def test_variables_are_literal_in_2008_documents() -> None:
    assert check("StringEquals", "${aws:username}", "alice", version="2008-10-17")[0] is False
    assert check("StringEquals", "${aws:username}", "${aws:username}", version="2008-10-17")[0] is True
    assert check("StringEquals", "${aws:username}", "alice", version=None)[0] is False


def test_condition_key_names_are_case_insensitive() -> None:
    policy = parse_policy(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:ListImages", "Resource": "*",
                                                  "Condition": {"IpAddress": {"aws:SourceIP": "10.0.0.0/8"}}}]},
        kind=PolicyKind.IDENTITY, name="c",
    )
    req = Request(Principal.from_arn(USER), "ecr:ListImages", "*", context={"AWS:SourceIp": "10.0.0.1"})
    assert evaluate(req, [policy]).allowed


def test_clauses_are_anded_across_operators_and_keys() -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:ListImages", "Resource": "*", "Condition": {
        "StringEquals": {"test:a": "1", "test:b": "2"}, "Bool": {"test:c": "true"}}}]}
    policy = parse_policy(document, kind=PolicyKind.IDENTITY, name="c")

    def allowed(**ctx: str) -> bool:
        context = {f"test:{k}": v for k, v in ctx.items()}
        return evaluate(Request(Principal.from_arn(USER), "ecr:ListImages", "*", context=context), [policy]).allowed

    assert allowed(a="1", b="2", c="true")
    assert not allowed(a="1", b="2", c="false")
    assert not allowed(a="1", b="3", c="true")
    assert not allowed(a="1", c="true")
