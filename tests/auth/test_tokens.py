"""Registry passwords for docker login (reference 4.1, 4.2): issue, verify, refuse."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.auth.tokens import (
    DEFAULT_TTL, MAX_PASSWORD_LENGTH, PREFIX, TokenClaims, TokenError, TokenSigner,
    authorization_token, parse_basic,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NOW = 1_700_000_000.75
ALICE = dict(principal_arn="arn:aws:iam::123456789012:user/alice", account="123456789012",
             user_id="AIDAEXAMPLEALICE0001", access_key_id="AKIAIOSFODNN7EXAMPLE")


def issue(signer: TokenSigner | None = None, **overrides) -> tuple[str, int]:
    return (signer or TokenSigner(KEY)).issue(**{**ALICE, "now": NOW, **overrides})


def reason(password: str, *, signer: TokenSigner | None = None, now: float = NOW) -> str:
    with pytest.raises(TokenError) as caught:
        (signer or TokenSigner(KEY)).verify(password, now=now)
    return caught.value.reason


def test_round_trip_returns_the_claims_issued():
    password, expires_at = issue()
    assert expires_at == int(NOW) + DEFAULT_TTL == int(NOW) + 12 * 3600
    assert TokenSigner(KEY).verify(password, now=NOW) == TokenClaims(
        **ALICE, issued_at=int(NOW), expires_at=expires_at)


def test_another_process_with_the_same_key_verifies_it():
    password, _ = issue(TokenSigner(KEY))
    assert TokenSigner(bytes(KEY)).verify(password, now=NOW + 60).account == "123456789012"


def test_format_is_compact_versioned_and_whitespace_free():
    password, _ = issue()
    assert password.startswith(PREFIX)
    assert re.fullmatch(r"bt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", password)
    assert re.fullmatch(r"\S+", authorization_token(password))


@pytest.mark.parametrize("offset,outcome", [
    (-1, "valid"),           # one second before expires_at
    (0, "expired"),          # exactly expires_at
    (1, "expired"),
    (365 * 86400, "expired"),
])
def test_expiry_boundary(offset, outcome):
    password, expires_at = issue(ttl=600)
    now = expires_at + offset
    if outcome == "valid":
        assert TokenSigner(KEY).verify(password, now=now).expires_at == expires_at
    else:
        assert reason(password, now=now) == "expired"


def test_custom_ttl_and_bad_ttl():
    assert issue(ttl=60)[1] == int(NOW) + 60
    for ttl in (0, -5):
        with pytest.raises(ValueError):
            issue(ttl=ttl)


def _flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1:]


def _segments(password: str) -> list[tuple[int, int]]:
    """(start, end) of the prefix, claims and MAC segments."""
    first = password.index(".") + 1
    second = password.index(".", first) + 1
    return [(0, first), (first, second - 1), (second, len(password))]


@pytest.mark.parametrize("segment", ["prefix", "claims", "mac"])
def test_tampering_any_character_of_any_segment_is_invalid(segment):
    password, _ = issue()
    start, end = _segments(password)[["prefix", "claims", "mac"].index(segment)]
    for index in range(start, end):
        if password[index] == ".":
            continue
        assert reason(_flip(password, index)) == "invalid", index


@pytest.mark.parametrize("position", [-1, -45], ids=["mac", "claims"])
def test_every_other_spelling_of_the_last_character_is_invalid(position):
    # The last base64 character of each segment has spare bits: a decoder would accept
    # several spellings of the same bytes. Only the issued spelling verifies.
    password, _ = issue()
    index = len(password) + position
    assert password[index] != "."
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for char in alphabet.replace(password[index], ""):
        assert reason(password[:index] + char + password[index + 1:]) == "invalid", char


def test_re_signed_claims_from_another_key_are_invalid():
    password, _ = issue(TokenSigner(OTHER_KEY))
    assert reason(password) == "invalid"


def test_claims_swapped_between_two_tokens_are_invalid():
    alice, _ = issue()
    bob, _ = issue(principal_arn="arn:aws:iam::123456789012:user/bob")
    forged = alice.rsplit(".", 1)[0] + "." + bob.rsplit(".", 1)[1]
    assert reason(forged) == "invalid"


def test_expired_forgery_is_reported_invalid_not_expired():
    password, expires_at = issue(TokenSigner(OTHER_KEY))
    assert reason(password, now=expires_at + 10) == "invalid"


def test_raised_privileges_in_readable_claims_are_invalid():
    password, _ = issue()
    prefix, claims, mac = password.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["exp"] += 10 * 365 * 86400
    data["arn"] = "arn:aws:iam::123456789012:root"
    forged_claims = base64.urlsafe_b64encode(
        json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert reason(f"{prefix}.{forged_claims}.{mac}") == "invalid"


@pytest.mark.parametrize("garbage", [
    "", "bt1.", "bt1..", "bt1.a.b", "bt2.abc.def", "bt1.abc", "bt1.a.b.c", "bt1.====.====",
    "bt1.é.x", "bt1.YQ.YQ", " bt1.YQ.YQ", "Bearer x", "AWS:password", "x" * 10_000,
    "bt1." + "A" * 5000 + ".x",
])
def test_garbage_is_invalid(garbage):
    assert reason(garbage) == "invalid"


def test_garbage_with_padding_or_whitespace_around_a_valid_token_is_invalid():
    password, _ = issue()
    for variant in (password + "=", password + " ", " " + password, password + "\n",
                    password.replace(".", ". ", 1)):
        assert reason(variant) == "invalid"


@given(st.text(max_size=300))
def test_arbitrary_text_is_invalid(text):
    with pytest.raises(TokenError) as caught:
        TokenSigner(KEY).verify(text, now=NOW)
    assert caught.value.reason == "invalid"
    assert str(caught.value) == "invalid"


def test_error_never_echoes_the_password():
    password, expires_at = issue()
    with pytest.raises(TokenError) as caught:
        TokenSigner(KEY).verify(password, now=expires_at)
    assert password not in str(caught.value) and password not in repr(caught.value)
    assert KEY.hex() not in repr(TokenSigner(KEY))


@pytest.mark.parametrize("key", [b"", b"short", bytes(31), "a" * 40])
def test_key_must_be_32_bytes_or_more(key):
    with pytest.raises(ValueError):
        TokenSigner(key)


def test_size_stays_far_below_docker_limits():
    typical, _ = issue()
    assert len(typical) < 400
    # IAM's longest user ARN: a 512-character path and a 64-character name.
    longest_arn = "arn:aws:iam::123456789012:user/" + "p" * 510 + "/" + "n" * 64
    longest, _ = issue(principal_arn=longest_arn, user_id="A" * 128, access_key_id="A" * 128)
    assert len(longest) < MAX_PASSWORD_LENGTH
    assert len(authorization_token(longest)) < 2 * 1024 + 1024  # base64 of "AWS:" + it
    with pytest.raises(ValueError):
        issue(principal_arn="x" * MAX_PASSWORD_LENGTH)


def test_authorization_token_is_base64_of_aws_colon_password_like_ecr():
    password, _ = issue()
    token = authorization_token(password)
    assert base64.b64decode(token, validate=True) == b"AWS:" + password.encode()
    assert parse_basic("Basic " + token) == ("AWS", password)


@pytest.mark.parametrize("value,expected", [
    ("Basic " + base64.b64encode(b"AWS:secret").decode(), ("AWS", "secret")),
    ("basic " + base64.b64encode(b"AWS:secret").decode(), ("AWS", "secret")),
    ("  Basic   " + base64.b64encode(b"AWS:se:cr:et").decode() + " ", ("AWS", "se:cr:et")),
    ("Basic " + base64.b64encode(b"AWS:").decode(), ("AWS", "")),
    ("Basic " + base64.b64encode(b"nocolon").decode(), None),
    ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), None),
    ("Basic not*base64", None),
    ("Basic", None),
    ("", None),
    ("Bearer " + base64.b64encode(b"AWS:secret").decode(), None),
    ("AWS4-HMAC-SHA256 Credential=x", None),
])
def test_parse_basic(value, expected):
    assert parse_basic(value) == expected
