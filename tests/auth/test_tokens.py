"""Registry passwords for docker login (reference 4.1, 4.2): issue, verify, refuse; the key id
they carry picks the key during a rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
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
KID, NEW_KID = "0123456789abcdef", "fedcba9876543210"
NOW = 1_700_000_000.75
ALICE = dict(principal_arn="arn:aws:iam::123456789012:user/alice", account="123456789012",
             user_id="AIDAEXAMPLEALICE0001", access_key_id="AKIAIOSFODNN7EXAMPLE")


def signer(key: bytes = KEY, key_id: str = KID,
           previous: dict[str, bytes] | None = None) -> TokenSigner:
    return TokenSigner(key, key_id=key_id, previous=previous)


def issue(signer_: TokenSigner | None = None, **overrides) -> tuple[str, int]:
    return (signer_ or signer()).issue(**{**ALICE, "now": NOW, **overrides})


def reason(password: str, *, by: TokenSigner | None = None, now: float = NOW) -> str:
    with pytest.raises(TokenError) as caught:
        (by or signer()).verify(password, now=now)
    return caught.value.reason


def test_round_trip_returns_the_claims_issued():
    password, expires_at = issue()
    assert expires_at == int(NOW) + DEFAULT_TTL == int(NOW) + 12 * 3600
    assert signer().verify(password, now=NOW) == TokenClaims(
        **ALICE, issued_at=int(NOW), expires_at=expires_at)


def test_another_process_with_the_same_key_verifies_it():
    password, _ = issue(signer())
    assert signer(bytes(KEY)).verify(password, now=NOW + 60).account == "123456789012"


def test_format_is_compact_versioned_and_whitespace_free():
    password, _ = issue()
    assert password.startswith(PREFIX)
    assert re.fullmatch(r"bt2\.[0-9a-f]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", password)
    assert password.split(".")[1] == KID
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
        assert signer().verify(password, now=now).expires_at == expires_at
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


SEGMENTS = ["prefix", "key id", "claims", "mac"]


def _segments(password: str) -> list[tuple[int, int]]:
    """(start, end) of the prefix, key id, claims and MAC segments."""
    ends = [i for i, char in enumerate(password) if char == "."] + [len(password)]
    starts = [0] + [end + 1 for end in ends[:-1]]
    return list(zip(starts, ends))


@pytest.mark.parametrize("segment", SEGMENTS)
def test_tampering_any_character_of_any_segment_is_invalid(segment):
    password, _ = issue()
    start, end = _segments(password)[SEGMENTS.index(segment)]
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
    password, _ = issue(signer(OTHER_KEY))
    assert reason(password) == "invalid"


def test_claims_swapped_between_two_tokens_are_invalid():
    alice, _ = issue()
    bob, _ = issue(principal_arn="arn:aws:iam::123456789012:user/bob")
    forged = alice.rsplit(".", 1)[0] + "." + bob.rsplit(".", 1)[1]
    assert reason(forged) == "invalid"


def test_expired_forgery_is_reported_invalid_not_expired():
    password, expires_at = issue(signer(OTHER_KEY))
    assert reason(password, now=expires_at + 10) == "invalid"


def test_raised_privileges_in_readable_claims_are_invalid():
    password, _ = issue()
    prefix, kid, claims, mac = password.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["exp"] += 10 * 365 * 86400
    data["arn"] = "arn:aws:iam::123456789012:root"
    forged_claims = base64.urlsafe_b64encode(
        json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert reason(f"{prefix}.{kid}.{forged_claims}.{mac}") == "invalid"


@pytest.mark.parametrize("garbage", [
    "", "bt1.", "bt1..", "bt1.a.b", "bt2.abc.def", "bt1.abc", "bt1.a.b.c", "bt1.====.====",
    "bt1.é.x", "bt1.YQ.YQ", " bt1.YQ.YQ", "Bearer x", "AWS:password", "x" * 10_000,
    "bt1." + "A" * 5000 + ".x", f"bt2.{KID}", f"bt2.{KID}.", f"bt2.{KID}..", f"bt2.{KID}.YQ",
    f"bt2.{KID}.YQ.YQ", f"bt2.{KID.upper()}.YQ.YQ", f"bt2..{KID}.YQ.YQ", "bt2.YQ.YQ",
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
        signer().verify(text, now=NOW)
    assert caught.value.reason == "invalid"
    assert str(caught.value) == "invalid"


def test_error_never_echoes_the_password():
    password, expires_at = issue()
    with pytest.raises(TokenError) as caught:
        signer().verify(password, now=expires_at)
    assert password not in str(caught.value) and password not in repr(caught.value)
    assert KEY.hex() not in repr(signer())


@pytest.mark.parametrize("key", [b"", b"short", bytes(31), "a" * 40])
def test_key_must_be_32_bytes_or_more(key):
    with pytest.raises(ValueError):
        TokenSigner(key, key_id=KID)
    with pytest.raises(ValueError):
        TokenSigner(KEY, key_id=KID, previous={NEW_KID: key})


@pytest.mark.parametrize("key_id", ["", "0123", KID.upper(), KID + "0", "g" * 16, "bt2."])
def test_key_ids_are_16_lower_case_hex_digits(key_id):
    with pytest.raises(ValueError):
        TokenSigner(KEY, key_id=key_id)
    with pytest.raises(ValueError):
        TokenSigner(KEY, key_id=KID, previous={key_id: OTHER_KEY})


# -- rotation: the key id picks the key ----------------------------------------------------------

def test_during_a_rotation_tokens_of_both_keys_verify_and_new_ones_carry_the_new_id():
    old_token, _ = issue(signer(KEY, KID))
    rotating = signer(OTHER_KEY, NEW_KID, previous={KID: KEY})
    assert rotating.verify(old_token, now=NOW).access_key_id == ALICE["access_key_id"]
    new_token, _ = issue(rotating)
    assert new_token.split(".")[1] == NEW_KID
    assert signer(OTHER_KEY, NEW_KID).verify(new_token, now=NOW).account == "123456789012"
    # A node still on the old key alone cannot verify what the new key signed.
    assert reason(new_token, by=signer(KEY, KID)) == "invalid"


def test_a_token_of_a_removed_key_is_invalid_even_when_expired():
    old_token, expires_at = issue(signer(KEY, KID))
    after = signer(OTHER_KEY, NEW_KID)
    assert reason(old_token, by=after) == "invalid"
    assert reason(old_token, by=after, now=expires_at + 1) == "invalid"


def test_a_token_relabelled_with_another_configured_key_id_is_invalid():
    old_token, _ = issue(signer(KEY, KID))
    relabelled = old_token.replace(f".{KID}.", f".{NEW_KID}.", 1)
    assert reason(relabelled, by=signer(OTHER_KEY, NEW_KID, previous={KID: KEY})) == "invalid"


def _legacy_token(key: bytes, **claims) -> str:
    """A ``bt1.`` password as Berth issued them before key ids."""
    data = {"arn": ALICE["principal_arn"], "acct": ALICE["account"],
            "uid": ALICE["user_id"], "akid": ALICE["access_key_id"],
            "iat": int(NOW), "exp": int(NOW) + 600, **claims}
    body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":"), sort_keys=True)
                                    .encode()).rstrip(b"=").decode()
    signed = "bt1." + body
    mac = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return signed + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_tokens_from_before_key_ids_verify_under_any_configured_key_until_they_expire():
    legacy = _legacy_token(KEY)
    assert signer(KEY).verify(legacy, now=NOW).user_id == ALICE["user_id"]
    assert signer(OTHER_KEY, NEW_KID, previous={KID: KEY}).verify(
        legacy, now=NOW).expires_at == int(NOW) + 600
    assert reason(legacy, now=NOW + 600) == "expired"
    assert reason(legacy, by=signer(OTHER_KEY, NEW_KID)) == "invalid"
    tampered = _legacy_token(KEY).replace("bt1.", "bt1.x", 1)
    assert reason(tampered) == "invalid"


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
