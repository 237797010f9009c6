"""Parsing and validation: a table of invalid documents with the exact problems reported, and
the normalisations a valid document goes through."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies import (
    Condition,
    Effect,
    Patterns,
    PolicyError,
    PolicyKind,
    PrincipalBlock,
    Problem,
    parse_policy,
    validate,
)

I, R = PolicyKind.IDENTITY, PolicyKind.RESOURCE
V = "2012-10-17"
REPO = "arn:aws:ecr:us-east-1:123456789012:repository/app"


def doc(*statements: Any, version: str | None = V, **top: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"Statement": list(statements), **top}
    if version is not None:
        d["Version"] = version
    return d


def st(**elements: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": REPO}
    base.update(elements)
    return {k: v for k, v in base.items() if v is not None}


def rst(**elements: Any) -> dict[str, Any]:
    """A resource-policy statement (Principal, no Resource)."""
    base: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "ecr:BatchGetImage"}
    base.update(elements)
    return {k: v for k, v in base.items() if v is not None}


# (description, document, kind, expected problems as "path: message")
INVALID: list[tuple[str, Any, PolicyKind, list[str]]] = [
    ("not JSON", "{", I, ["Syntax errors in policy. Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"]),
    ("a JSON array", "[]", I, ["Syntax errors in policy. The policy document must be a JSON object."]),
    ("NaN is not JSON", '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {"NumericLessThan": {"s3:max-keys": NaN}}}}', I,
     ["Syntax errors in policy. NaN is not valid JSON"]),
    ("unknown top-level element", doc(st(), Foo=1), I, ["Foo: unknown policy element"]),
    ("bad Version", doc(st(), version="2012-10-18"), I, ['Version: invalid Version \'2012-10-18\'; must be "2012-10-17" or "2008-10-17"']),
    ("numeric Version", doc(st(), version=2012), I, ['Version: invalid Version 2012; must be "2012-10-17" or "2008-10-17"']),
    ("Id in an identity policy", doc(st(), Id="x"), I, ["Id: Id is not allowed in an identity-based policy"]),
    ("non-string Id", doc(rst(), Id=5), R, ["Id: must be a string"]),
    ("missing Statement", {"Version": V}, I, ["Statement: missing required element"]),
    ("empty Statement list", doc(), I, ["Statement: must be an object or a non-empty list of objects"]),
    ("Statement is a string", {"Version": V, "Statement": "x"}, I, ["Statement: must be an object or a non-empty list of objects"]),
    ("statement is not an object", doc(st(), "Allow"), I, ["Statement[1]: a statement must be an object"]),
    ("unknown statement element", doc(st(Actions="ecr:*")), I, ["Statement[0].Actions: unknown statement element"]),
    ("lower-case effect", doc(st(Effect="allow")), I, ["Statement[0].Effect: invalid Effect 'allow'; must be \"Allow\" or \"Deny\" (case-sensitive)"]),
    ("missing Effect", doc(st(Effect=None)), I, ["Statement[0]: Policy statement must contain an Effect."]),
    ("Action and NotAction", doc(st(NotAction="ecr:PutImage")), I, ["Statement[0]: Action and NotAction cannot both be specified"]),
    ("no Action", doc(st(Action=None)), I, ["Statement[0]: Policy statement must contain actions."]),
    ("Resource and NotResource", doc(st(NotResource="*")), I, ["Statement[0]: Resource and NotResource cannot both be specified"]),
    ("identity statement without Resource", doc(st(Resource=None)), I, ["Statement[0]: Policy statement must contain resources."]),
    ("Principal in an identity policy", doc(st(Principal="*")), I, ["Statement[0].Principal: Policy document should not specify a principal."]),
    ("NotPrincipal in an identity policy", doc(st(NotPrincipal="*", Effect="Deny")), I, ["Statement[0].NotPrincipal: Policy document should not specify a principal."]),
    ("resource statement without Principal", doc(rst(Principal=None)), R, ["Statement[0]: Missing required field Principal"]),
    ("Principal and NotPrincipal", doc(rst(NotPrincipal="*", Effect="Deny")), R, ["Statement[0]: Principal and NotPrincipal cannot both be specified"]),
    ("NotPrincipal with Allow", doc(rst(Principal=None, NotPrincipal={"AWS": "123456789012"})), R, ['Statement[0].NotPrincipal: NotPrincipal is only supported with "Effect": "Deny"']),
    ("Principal is an empty object", doc(rst(Principal={})), R, ['Statement[0].Principal: must be "*" or an object such as {"AWS": ["123456789012"]}']),
    ("unknown principal type", doc(rst(Principal={"IAM": "123456789012"})), R, ["Statement[0].Principal.IAM: unknown principal element"]),
    ("partial wildcard in a principal", doc(rst(Principal={"AWS": "arn:aws:iam::123456789012:user/*"})), R, ["Statement[0].Principal.AWS: Invalid principal in policy: 'arn:aws:iam::123456789012:user/*'"]),
    ("short account id", doc(rst(Principal={"AWS": ["123456789012", "12345"]})), R, ["Statement[0].Principal.AWS[1]: Invalid principal in policy: '12345'"]),
    ("principal ARN of another service", doc(rst(Principal={"AWS": "arn:aws:ecr:us-east-1:123456789012:repository/x"})), R, ["Statement[0].Principal.AWS: Invalid principal in policy: 'arn:aws:ecr:us-east-1:123456789012:repository/x'"]),
    ("Service *", doc(rst(Principal={"Service": "*"})), R, ["Statement[0].Principal.Service: Invalid principal in policy: '*'"]),
    ("Action without vendor", doc(st(Action="BatchGetImage")), I, ["Statement[0].Action: Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."]),
    ("Action with two colons", doc(st(Action=["ecr:*", "ecr:Batch:GetImage"])), I, ["Statement[0].Action[1]: Actions/Condition can contain only one colon."]),
    ("bad vendor", doc(st(Action="e$r:BatchGetImage")), I, ["Statement[0].Action: Vendor e$r is not valid"]),
    ("wildcard vendor", doc(st(Action="ec*:BatchGetImage")), I, ["Statement[0].Action: Vendor ec* is not valid"]),
    ("unknown ECR action", doc(st(Action="ecr:GetImage")), I, ["Statement[0].Action: Action ecr:GetImage does not match any ecr action"]),
    ("ECR wildcard matching nothing", doc(st(Action="ecr:Pull*")), I, ["Statement[0].Action: Action ecr:Pull* does not match any ecr action"]),
    ("unknown ECS action", doc(st(Action="ecs:Launch")), I, ["Statement[0].Action: Action ecs:Launch does not match any ecs action"]),
    ("empty action list", doc(st(Action=[])), I, ["Statement[0].Action: must be a string or a non-empty list of strings"]),
    ("non-string action", doc(st(Action=["ecr:PutImage", 3])), I, ["Statement[0].Action[1]: must be a string"]),
    ("Resource not an ARN", doc(st(Resource="repository/app")), I, ['Statement[0].Resource: Resource repository/app must be in ARN format or "*".']),
    ("wildcard service in Resource", doc(st(Resource="arn:aws:ec*:us-east-1:123456789012:repository/app")), I, ["Statement[0].Resource: Resource vendor must be fully qualified and cannot contain regexes."]),
    ("unknown partition", doc(st(Resource="arn:aws-mars:ecr:us-east-1:123456789012:repository/app")), I, ['Statement[0].Resource: Partition "aws-mars" is not valid for resource "arn:aws-mars:ecr:us-east-1:123456789012:repository/app".']),
    ("IAM resource with a region", doc(st(Action="iam:GetUser", Resource="arn:aws:iam:us-east-1:123456789012:user/x")), I, ["Statement[0].Resource: IAM resource arn:aws:iam:us-east-1:123456789012:user/x cannot contain region information."]),
    ("variable before the resource part", doc(st(Resource="arn:aws:ecr:us-east-1:${aws:PrincipalAccount}:repository/app")), I, ["Statement[0].Resource: policy variables are only allowed in the resource part of an ARN (after the 5th colon)"]),
    ("unterminated variable", doc(st(Resource=f"{REPO}/${{aws:username")), I, [f"Statement[0].Resource: unterminated policy variable in '{REPO}/${{aws:username'"]),
    ("malformed variable", doc(st(Resource=f"{REPO}/${{username}}")), I, ["Statement[0].Resource: invalid policy variable ${username}"]),
    ("Sid not a string", doc(st(Sid=1)), I, ["Statement[0].Sid: must be a string"]),
    ("identity Sid with punctuation", doc(st(Sid="allow pull")), I, ["Statement[0].Sid: must contain only ASCII letters and digits"]),
    ("duplicate identity Sids", doc(st(Sid="A"), st(Sid="B"), st(Sid="A")), I, ["Statement[2].Sid: Statement IDs (SID) in a single policy must be unique."]),
    ("misspelt condition operator", doc(st(), st(Condition={"StringEqualz": {"aws:username": "x"}})), I, ["Statement[1].Condition.StringEqualz: unsupported condition operator"]),
    ("operator names are case-sensitive", doc(st(Condition={"stringEquals": {"aws:username": "x"}})), I, ["Statement[0].Condition.stringEquals: unsupported condition operator"]),
    ("NullIfExists does not exist", doc(st(Condition={"NullIfExists": {"aws:username": "true"}})), I, ["Statement[0].Condition.NullIfExists: unsupported condition operator"]),
    ("set qualifier on Null", doc(st(Condition={"ForAnyValue:Null": {"aws:TagKeys": "true"}})), I, ["Statement[0].Condition.ForAnyValue:Null: unsupported condition operator"]),
    ("unknown set qualifier", doc(st(Condition={"ForSomeValues:StringEquals": {"aws:TagKeys": "a"}})), I, ["Statement[0].Condition.ForSomeValues:StringEquals: unsupported condition operator"]),
    ("Condition is a list", doc(st(Condition=[{"StringEquals": {"aws:username": "x"}}])), I, ["Statement[0].Condition: must be an object mapping condition operators to {key: values}"]),
    ("operator block is empty", doc(st(Condition={"StringEquals": {}})), I, ["Statement[0].Condition.StringEquals: must be a non-empty object mapping condition keys to values"]),
    ("condition key without vendor", doc(st(Condition={"StringEquals": {"username": "x"}})), I, ["Statement[0].Condition.StringEquals.username: Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."]),
    ("condition key with two colons", doc(st(Condition={"StringEquals": {"aws:user:name": "x"}})), I, ["Statement[0].Condition.StringEquals.aws:user:name: invalid condition key 'aws:user:name'"]),
    ("empty value list", doc(st(Condition={"StringEquals": {"aws:username": []}})), I, ["Statement[0].Condition.StringEquals.aws:username: must be a value or a non-empty list of values"]),
    ("null condition value", doc(st(Condition={"StringEquals": {"aws:username": None}})), I, ["Statement[0].Condition.StringEquals.aws:username: condition values must be strings, numbers or booleans"]),
    ("nested object value", doc(st(Condition={"StringEquals": {"aws:username": ["a", {"b": 1}]}})), I, ["Statement[0].Condition.StringEquals.aws:username[1]: condition values must be strings, numbers or booleans"]),
    ("non-numeric Numeric value", doc(st(Condition={"NumericLessThan": {"s3:max-keys": "ten"}})), I, ["Statement[0].Condition.NumericLessThan.s3:max-keys: 'ten' is not a number"]),
    ("variables are not allowed in Numeric values", doc(st(Condition={"NumericEquals": {"s3:max-keys": "${aws:username}"}})), I, ["Statement[0].Condition.NumericEquals.s3:max-keys: '${aws:username}' is not a number"]),
    ("bad date", doc(st(Condition={"DateGreaterThan": {"aws:CurrentTime": "yesterday"}})), I, ["Statement[0].Condition.DateGreaterThan.aws:CurrentTime: 'yesterday' is not an ISO 8601 date/time or epoch seconds"]),
    ("bad Bool", doc(st(Condition={"Bool": {"aws:SecureTransport": "yes"}})), I, ["Statement[0].Condition.Bool.aws:SecureTransport: 'yes' is not \"true\" or \"false\""]),
    ("bad Null", doc(st(Condition={"Null": {"aws:TokenIssueTime": "maybe"}})), I, ["Statement[0].Condition.Null.aws:TokenIssueTime: 'maybe' is not \"true\" or \"false\""]),
    ("bad base64", doc(st(Condition={"BinaryEquals": {"s3:key": "not base64!"}})), I, ["Statement[0].Condition.BinaryEquals.s3:key: 'not base64!' is not base64"]),
    ("bad CIDR", doc(st(Condition={"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "10.0.0.0/33"]}})), I, ["Statement[0].Condition.IpAddress.aws:SourceIp[1]: '10.0.0.0/33' is not an IPv4 or IPv6 address or CIDR block"]),
    ("Arn value not an ARN", doc(st(Condition={"ArnLike": {"aws:SourceArn": "codebuild/project"}})), I, ["Statement[0].Condition.ArnLike.aws:SourceArn: 'codebuild/project' is not an ARN"]),
    ("malformed variable in a String value", doc(st(Condition={"StringEquals": {"aws:username": "${aws:username"}})), I, ["Statement[0].Condition.StringEquals.aws:username: unterminated policy variable in '${aws:username'"]),
    ("duplicate keys", '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Effect": "Deny", "Action": "ecr:*", "Resource": "*"}}', I, ["Statement.Effect: Syntax errors in policy. Duplicate key 'Effect'."]),
    ("duplicate condition keys", '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {"StringEquals": {"aws:username": "a", "aws:username": "b"}}}}', I,
     ["Statement.Condition.StringEquals.aws:username: Syntax errors in policy. Duplicate key 'aws:username'."]),
    ("identity policy too large", doc(*[st(Sid=f"S{i}", Resource=f"{REPO}-{i:04d}") for i in range(70)]), I,
     ["Policy document exceeds the maximum size of 6144 characters (whitespace excluded): 8988."]),
    ("invalid character in an identity policy", doc(st(Resource=f"{REPO}-\u0101")), I, ["Policy document contains an invalid character U+0101."]),
    ("several problems are all reported", doc(st(Effect="Permit", Action="ecr:Nope"), st(Condition={"Foo": {"aws:x": "y"}})), I,
     ["Statement[0].Effect: invalid Effect 'Permit'; must be \"Allow\" or \"Deny\" (case-sensitive)",
      "Statement[0].Action: Action ecr:Nope does not match any ecr action",
      "Statement[1].Condition.Foo: unsupported condition operator"]),
]


@pytest.mark.parametrize(("document", "kind", "expected"), [pytest.param(d, k, e, id=desc) for desc, d, k, e in INVALID])
def test_invalid_documents_are_rejected_with_paths(document: Any, kind: PolicyKind, expected: list[str]) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(document, kind=kind, name="p")
    assert [str(p) for p in raised.value.problems] == expected
    assert [str(p) for p in validate(document, kind=kind)] == expected


def test_policy_error_names_the_policy_and_keeps_problems() -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(doc(st(Effect="allow")), kind=I, name="team.json")
    assert str(raised.value).startswith("team.json: Statement[0].Effect: invalid Effect")
    assert raised.value.problems[0] == Problem("Statement[0].Effect", "invalid Effect 'allow'; must be \"Allow\" or \"Deny\" (case-sensitive)")


VALID: list[tuple[str, Any, PolicyKind]] = [
    ("statement as a single object", {"Version": V, "Statement": st()}, I),
    ("no Version (2008 semantics)", {"Statement": [st()]}, I),
    ("Version 2008-10-17 repository policy with Id and a free-form Sid", doc(rst(Sid="new statement"), version="2008-10-17", Id="repo-policy"), R),
    ("resource policy statements need no unique Sids", doc(rst(Sid="A"), rst(Sid="A")), R),
    ("resource policy with Resource (registry policy)", doc(rst(Resource="arn:aws:ecr:us-west-2:123456789012:repository/*")), R),
    ("NotPrincipal with Deny", doc(rst(Effect="Deny", Principal=None, NotPrincipal={"AWS": ["123456789012"]})), R),
    ("every principal form", doc(rst(Principal={"AWS": ["*", "123456789012", "arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/division/alice",
                                                  "arn:aws:iam::123456789012:role/ci", "arn:aws:sts::123456789012:assumed-role/ci/s1",
                                                  "arn:aws:sts::123456789012:federated-user/bob"],
                                          "Service": ["ecs.amazonaws.com", "codebuild.amazonaws.com"],
                                          "Federated": "cognito-identity.amazonaws.com",
                                          "CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"})), R),
    ("other vendors are checked for syntax only", doc(st(Action=["s3:GetObject", "iam:*", "dynamodb:Get?tem"], Resource="*")), I),
    ("every operator family", doc(st(Condition={
        "StringEquals": {"aws:username": "a"}, "StringNotEqualsIgnoreCase": {"aws:username": "b"}, "StringLike": {"aws:userid": "AIDA*"},
        "NumericGreaterThanEquals": {"s3:max-keys": 10}, "NumericLessThan": {"s3:max-keys": "1.5e3"},
        "DateLessThan": {"aws:CurrentTime": "2030-01-01"}, "DateGreaterThan": {"aws:EpochTime": 1700000000},
        "Bool": {"aws:SecureTransport": True}, "BinaryEquals": {"s3:key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="},
        "IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8::/32", "198.51.100.7"]},
        "ArnLike": {"aws:SourceArn": "arn:aws:codebuild:*:123456789012:project/*"}, "Null": {"aws:TokenIssueTime": "true"},
        "ForAllValues:StringLike": {"aws:TagKeys": ["team*"]}, "ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "x"},
        "NumericLessThanIfExists": {"s3:max-keys": "5"}})), I),
    ("variables in String, Arn and Bool values", doc(st(Condition={"StringEquals": {"aws:username": "${aws:PrincipalTag/name, 'nobody'}"},
                                                             "ArnEquals": {"aws:SourceArn": "arn:aws:iam::${aws:PrincipalAccount}:user/x"},
                                                             "Bool": {"aws:SecureTransport": "${aws:PrincipalTag/tls}"}})), I),
    ("2008-10-17 leaves ${ literal, even malformed", doc(st(Resource=f"{REPO}/${{oops"), version="2008-10-17"), I),
    ("wildcard partition and region", doc(st(Resource="arn:*:ecr:*:123456789012:repository/*")), I),
]


@pytest.mark.parametrize(("document", "kind"), [pytest.param(d, k, id=desc) for desc, d, k in VALID])
def test_valid_documents_parse(document: Any, kind: PolicyKind) -> None:
    assert validate(document, kind=kind) == []
    policy = parse_policy(document, kind=kind, name="p")
    assert policy.statements
    assert parse_policy(json.dumps(document), kind=kind, name="p") == policy  # text and mapping agree


def test_model_is_normalised() -> None:
    policy = parse_policy(
        '{"Version": "2012-10-17", "Statement": {"Sid": "One", "Effect": "Deny", "Principal": "*", "NotAction": "ecr:PutImage",'
        ' "Condition": {"NumericLessThan": {"s3:max-keys": 1.50}, "Bool": {"aws:SecureTransport": false}}}}',
        kind=R, name="repo",
    )
    (statement,) = policy.statements
    assert statement.index == 0
    assert statement.effect is Effect.DENY
    assert statement.principal == PrincipalBlock((("AWS", ("*",)),))
    assert statement.action == Patterns(("ecr:PutImage",), negated=True)
    assert statement.resource is None
    assert statement.conditions == (
        Condition("NumericLessThan", "s3:max-keys", ("1.50",)),  # JSON number kept as its text
        Condition("Bool", "aws:SecureTransport", ("false",)),
    )
    assert all(type(v) is str for c in statement.conditions for v in c.values)


def test_bytes_input_and_non_utf8() -> None:
    text = json.dumps(doc(st()))
    assert parse_policy(text.encode(), kind=I, name="p") == parse_policy(text, kind=I, name="p")
    assert [str(p) for p in validate(b"\xff\xfe", kind=I)] == ["Syntax errors in policy. The document is not UTF-8 text."]


def test_size_limits_by_kind_and_override() -> None:
    big = doc(*[rst(Sid=f"S{i}", Principal={"AWS": f"arn:aws:iam::123456789012:user/user{i:04d}"}) for i in range(80)])
    assert validate(big, kind=R) == []  # about 8,000 characters: fine for a repository policy (10,240)
    assert [str(p) for p in validate(big, kind=R, max_size=5000)][0].startswith("Policy document exceeds the maximum size of 5000")
    whitespace = json.dumps(doc(st()), indent=400)  # whitespace is not counted
    assert len(whitespace) > 6144 and validate(whitespace, kind=I) == []


def test_resource_policies_may_hold_any_unicode() -> None:
    assert validate(doc(rst(Sid="Zugriff für alle ✓")), kind=R) == []


def test_parse_rejects_non_document_types() -> None:
    with pytest.raises(TypeError):
        parse_policy(42, kind=I, name="p")  # type: ignore[arg-type]


def test_parse_compiles_once() -> None:
    policy = parse_policy(doc(st()), kind=I, name="p")
    assert policy.compiled is policy.compiled
