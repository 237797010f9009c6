"""Wildcard matching as tables: `*` and `?` over escaped text, case rules for actions vs ARNs,
and ARN component boundaries."""

from __future__ import annotations

import pytest
from policy_testkit import USER, allow, identity

from policies import Principal, Request, evaluate
from policies.wildcard import Chunk, compile_chunks, compile_patterns

# (pattern, value, matches) for plain text, case-sensitive (StringLike semantics)
PLAIN = [
    ("abc", "abc", True),
    ("abc", "abcd", False),
    ("abc", "xabc", False),
    ("a*", "a", True),
    ("a*", "abc/def:ghi", True),
    ("*c", "abc", True),
    ("a*c", "ac", True),
    ("a*c", "abcbc", True),
    ("a*c", "abcb", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("a??", "abc", True),
    ("?", "", False),
    ("*", "", True),
    ("**", "anything", True),
    ("a.c", "a.c", True),
    ("a.c", "abc", False),
    ("a+", "aa", False),
    ("a+", "a+", True),
    ("[ab]", "a", False),
    ("[ab]", "[ab]", True),
    ("(a|b)", "a", False),
    ("^a$", "^a$", True),
    ("a\\d", "a\\d", True),
    ("a\\d", "a1", False),
    ("{1}", "{1}", True),
    ("Abc", "abc", False),
    ("line*end", "line\nend", True),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), PLAIN)
def test_plain_wildcards_over_escaped_text(pattern: str, value: str, expected: bool) -> None:
    rx = compile_patterns([pattern])
    assert rx is not None
    assert (rx.match(value) is not None) is expected


# (pattern, value, matches) in ARN mode: * and ? stay inside the first five components
ARN = [
    ("arn:aws:ecr:*:123456789012:repository/*", "arn:aws:ecr:us-east-1:123456789012:repository/a/b", True),
    ("arn:aws:ecr:*:123456789012:repository/*", "arn:aws:ecr:us-east-1:999999999999:repository/a", False),
    ("arn:aws:ecr:*:*:repository/*", "arn:aws:ecr:us-east-1:999999999999:repository/a", True),
    ("arn:aws:ecr:*:repository/*", "arn:aws:ecr:us-east-1:1:repository/a", False),
    ("arn:aws:ecr:us-?ast-1:*:*", "arn:aws:ecr:us-east-1:1:x", True),
    ("arn:aws:ecr:us-?ast-1:*:*", "arn:aws:ecr:us:ast-1:1:x", False),
    ("arn:aws:s3:::b/*", "arn:aws:s3:::b/x:y/z", True),
    ("arn:aws:s3:::b*", "arn:aws:s3:::b:c", True),
    ("arn:*:ecr:*:*:repository/x", "arn:aws-cn:ecr:cn-north-1:1:repository/x", True),
    ("arn:aws:ecr:*:*:repository/x", "arn:aws:ecr:*:*:repository/x", True),
    ("arn:aws:ecr:*:*:repository/x", "*", False),
    ("arn:aws:ecr:*:*:repository/X", "arn:aws:ecr:r:1:repository/x", False),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), ARN)
def test_arn_wildcards_respect_components(pattern: str, value: str, expected: bool) -> None:
    rx = compile_patterns([pattern], arn=True)
    assert rx is not None
    assert (rx.match(value) is not None) is expected


def test_literal_chunks_are_never_wildcards() -> None:
    rx = compile_chunks([(Chunk("repo/"), Chunk("a*?", literal=True), Chunk("*"))])
    assert rx is not None
    assert rx.match("repo/a*?tail")
    assert not rx.match("repo/abc")


def test_alternatives_are_ored_and_empty_is_none() -> None:
    rx = compile_patterns(["a", "b*"])
    assert rx is not None and rx.match("a") and rx.match("bz") and not rx.match("c")
    assert compile_patterns([]) is None


# (action pattern, requested action, allowed) through the evaluator: actions are case-insensitive
ACTIONS = [
    ("ecr:BatchGetImage", "ecr:BatchGetImage", True),
    ("ecr:BatchGetImage", "ECR:batchgetimage", True),
    ("ECR:BATCHGETIMAGE", "ecr:BatchGetImage", True),
    ("ecr:*", "ecr:PutImage", True),
    ("ecr:*", "ecs:RunTask", False),
    ("ecr:Batch*", "ecr:BatchDeleteImage", True),
    ("ecr:*Image", "ecr:PutImage", True),
    ("ecr:*Image", "ecr:PutImageTagMutability", False),
    ("ecr:*Layer*", "ecr:GetDownloadUrlForLayer", True),
    ("ecr:Put?mage", "ecr:PutImage", True),
    ("ecr:Put?mage", "ecr:Putmage", False),
    ("*", "ecs:RunTask", True),
    ("ecr:BatchGetImage", "ecr:BatchGetImages", False),
    ("ecr:GetAuthorizationToken", "ecr:GetAuthorizationTokenX", False),
]


@pytest.mark.parametrize(("pattern", "action", "expected"), ACTIONS)
def test_action_matching(pattern: str, action: str, expected: bool) -> None:
    policy = identity(allow(pattern, "*"))
    assert evaluate(Request(Principal.from_arn(USER), action, "*"), [policy]).allowed is expected


# (Resource pattern, requested resource, allowed): ARNs are case-sensitive
RESOURCES = [
    ("*", "*", True),
    ("*", "arn:aws:ecr:us-east-1:123456789012:repository/x", True),
    ("arn:aws:ecr:us-east-1:123456789012:repository/app", "arn:aws:ecr:us-east-1:123456789012:repository/app", True),
    ("arn:aws:ecr:us-east-1:123456789012:repository/app", "arn:aws:ecr:us-east-1:123456789012:repository/App", False),
    ("arn:aws:ecr:us-east-1:123456789012:repository/app", "arn:aws:ecr:us-east-1:123456789012:repository/app/sub", False),
    ("arn:aws:ecr:us-east-1:123456789012:repository/app*", "arn:aws:ecr:us-east-1:123456789012:repository/app/sub", True),
    ("arn:aws:ecr:us-east-1:123456789012:repository/a.b", "arn:aws:ecr:us-east-1:123456789012:repository/aXb", False),
    ("arn:aws:ecr:us-east-1:123456789012:repository/*", "*", False),
]


@pytest.mark.parametrize(("pattern", "resource", "expected"), RESOURCES)
def test_resource_matching(pattern: str, resource: str, expected: bool) -> None:
    policy = identity(allow("ecr:*", pattern))
    request = Request(Principal.from_arn(USER), "ecr:PutImage", resource, resource_account="123456789012")
    assert evaluate(request, [policy]).allowed is expected


def test_not_resource_inverts_the_match() -> None:
    policy = identity({"Effect": "Allow", "Action": "ecr:*", "NotResource": "arn:aws:ecr:*:*:repository/secret*"})
    p = Principal.from_arn(USER)
    assert evaluate(Request(p, "ecr:PutImage", "arn:aws:ecr:us-east-1:123456789012:repository/app"), [policy]).allowed
    assert not evaluate(Request(p, "ecr:PutImage", "arn:aws:ecr:us-east-1:123456789012:repository/secret-x"), [policy]).allowed
    assert evaluate(Request(p, "ecr:GetAuthorizationToken", "*"), [policy]).allowed


# Patterns with several `*` in one region use SegmentGlob (no backtracking blow-up); it must
# agree with the plain regex translation, which is exact but exponential in the worst case.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from policies.wildcard import SegmentGlob, compile_source, is_linear, regex_source  # noqa: E402


@settings(max_examples=400, deadline=None)
@given(st.text("ab*?:/", max_size=10), st.text("ab:/", max_size=14), st.booleans(), st.booleans())
def test_segment_glob_agrees_with_the_regex_translation(pattern: str, text: str, arn: bool, literal_tail: bool) -> None:
    chunks = (Chunk(pattern), Chunk("*?", literal=True)) if literal_tail else (Chunk(pattern),)
    expected = compile_source(regex_source(chunks, arn=arn), False).match(text) is not None
    assert bool(SegmentGlob(chunks, arn=arn, ignore_case=False).match(text)) is expected
    matcher = compile_chunks([chunks], arn=arn)
    assert matcher is not None and (matcher.match(text) is not None) is expected


@pytest.mark.parametrize(("pattern", "linear"), [
    ("abc", True), ("a*", True), ("*a*", False), ("a?b?c*", True),
    ("arn:aws:ecr:*:*:repository/*", True), ("arn:aws:ecr:*:*:repository/*/*", False),
])
def test_linearity(pattern: str, linear: bool) -> None:
    assert is_linear([Chunk(pattern)], arn=pattern.startswith("arn:")) is linear


def test_many_stars_cannot_stall_a_request() -> None:
    import time

    evil = "arn:aws:ecr:us-east-1:123456789012:repository/" + "*a" * 40 + "b"
    policy = identity(allow("ecr:*", [evil, "arn:aws:ecr:us-east-1:123456789012:repository/x"]))
    name = "arn:aws:ecr:us-east-1:123456789012:repository/" + "a" * 250
    start = time.perf_counter()
    assert not evaluate(Request(Principal.from_arn(USER), "ecr:PutImage", name), [policy]).allowed
    assert evaluate(Request(Principal.from_arn(USER), "ecr:PutImage", name + "b"), [policy]).allowed
    assert time.perf_counter() - start < 0.5

    like = {"StringLike": {"test:v": "*x*x*x*x*x*x*x*x*x*x*x*x*y"}}
    policy = identity(allow("ecr:*", "*", Condition=like))
    start = time.perf_counter()
    assert not evaluate(Request(Principal.from_arn(USER), "ecr:PutImage", "*", context={"test:v": "x" * 5000}), [policy]).allowed
    assert time.perf_counter() - start < 0.5


from policies.variables import Var, compile_pattern_template, match_templates, parse_template, resolve  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text("ab*?:", max_size=6), st.text("ab*?:", max_size=6), st.text("ab*:", max_size=4),
       st.text("ab:", max_size=14), st.booleans(), st.booleans())
def test_variable_templates_match_like_their_resolved_text(before: str, after: str, value: str, text: str, arn: bool, null: bool) -> None:
    """Every per-request path (fast head/tail, spliced regex, SegmentGlob) agrees with
    resolving the variable to literal text and matching that."""
    template = parse_template(f"{before}${{test:v}}{after}", enabled=True)
    assert any(isinstance(p, Var) for p in template)
    context = {} if null else {"test:v": (value,)}
    prepared = compile_pattern_template(template, arn=arn)
    resolved = resolve(template, context)
    expected = resolved is not None and compile_source(regex_source(resolved, arn=arn), False).match(text) is not None
    assert match_templates((prepared,), text, context) is expected
