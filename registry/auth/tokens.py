"""Registry passwords for ``docker login``: what ECR's GetAuthorizationToken hands out.

A password is stateless and self-verifying, so every worker process (and every node holding
the same master key) checks it with one HMAC and no database round trip::

    bt2.<key id>.<base64url(JSON claims)>.<base64url(HMAC-SHA256(key, everything before))>

- ``bt2.`` versions the format; it is inside the MAC, so a token cannot be re-labelled.
- ``<key id>`` (16 hex digits, ``registry.auth.keys.master_key_id``) names the master key
  whose token key signed it, so a verifier holding the current and previous keys of a rotation
  picks the right one; a token whose key is no longer configured is invalid.
- The MAC covers the *encoded* claims text, so non-canonical base64 or inserted characters
  change what is authenticated and fail, and no JSON is parsed before the MAC checks out.
- URL-safe, unpadded, no whitespace (ECR's ``authorizationToken`` pattern is ``^\\S+$``), and
  a few hundred bytes: far below the credential-helper and header limits docker works with.

``bt1.<claims>.<mac>`` passwords, issued before key ids, still verify under any configured
key until they expire (12 hours at most); none are issued any more.

The password proves who logged in and until when; what that principal may do is decided by
policies when the password is used (reference 4.1), so revoking access needs no token list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Mapping

PREFIX = "bt2."
LEGACY_PREFIX = "bt1."
DEFAULT_TTL = 12 * 3600  # ECR: expiresAt = issue time + 12 hours
MAX_PASSWORD_LENGTH = 2048
MIN_KEY_LENGTH = 32
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_CLAIM_KEYS = {"arn": str, "acct": str, "uid": str, "akid": str, "iat": int, "exp": int}


class TokenError(Exception):
    """A password that must not be accepted; ``reason`` is "expired" or "invalid".

    The message is the reason only: never the password or any part of it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenClaims:
    """Who logged in (as GetAuthorizationToken saw them) and the validity window, epoch s."""

    principal_arn: str
    account: str
    user_id: str
    access_key_id: str
    issued_at: int
    expires_at: int


class TokenSigner:
    """Issues passwords under the current token key; verifies them under any key it holds.

    Every process that must accept a password needs the same keys; the caller derives them
    from the master keys (HKDF with a "registry-token" label, ``keys.token_signer``) so a
    token key is never a master key itself.
    """

    def __init__(self, key: bytes, *, key_id: str,
                 previous: Mapping[str, bytes] | None = None) -> None:
        """``key`` signs and verifies, labelled ``key_id`` (16 hex digits: the id of the master
        key it was derived from); ``previous`` maps the ids of older keys to keys that still
        verify.

        Raises: ValueError when a key is shorter than 32 bytes or an id is not 16 hex digits.
        """
        keys = {key_id: key, **{k: v for k, v in (previous or {}).items() if k != key_id}}
        for kid, value in keys.items():
            if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
                raise ValueError("a token key id is 16 lower-case hex digits")
            if not isinstance(value, bytes) or len(value) < MIN_KEY_LENGTH:
                raise ValueError(f"token key must be at least {MIN_KEY_LENGTH} bytes")
        self._key_id = key_id
        self._keys = keys

    def __repr__(self) -> str:
        return f"TokenSigner(key_id={self._key_id}, key=<redacted>)"

    def issue(self, *, principal_arn: str, account: str, user_id: str, access_key_id: str,
              now: float, ttl: int = DEFAULT_TTL) -> tuple[str, int]:
        """Mint a password for the principal that called GetAuthorizationToken.

        Args:
            now: the current time in epoch seconds (injected; truncated to whole seconds).
            ttl: lifetime in seconds; ECR's is 12 hours.

        Returns:
            (password, expires_at in epoch seconds).

        Raises:
            ValueError: ``ttl`` is not positive, or the claims would make a password longer
                than MAX_PASSWORD_LENGTH.
        """
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        issued_at = int(now)
        claims = {"arn": principal_arn, "acct": account, "uid": user_id, "akid": access_key_id,
                  "iat": issued_at, "exp": issued_at + ttl}
        body = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True,
                                     ensure_ascii=True).encode())
        signed = f"{PREFIX}{self._key_id}.{body}"
        password = signed + "." + _b64encode(_mac(self._keys[self._key_id], signed))
        if len(password) > MAX_PASSWORD_LENGTH:
            raise ValueError("claims too long for a registry password")
        return password, issued_at + ttl

    def verify(self, password: str, *, now: float) -> TokenClaims:
        """Check a password's MAC, then its expiry.

        A password is valid while ``now < expires_at``. Expiry is reported only for an
        authentic password, so a forger learns nothing from the reason.

        Returns:
            The claims the password was issued with.

        Raises:
            TokenError: "invalid" (wrong format, tampered, another key), "expired".
        """
        claims = self._authentic_claims(password)
        if now >= claims.expires_at:
            raise TokenError("expired")
        return claims

    def _authentic_claims(self, password: str) -> TokenClaims:
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            raise TokenError("invalid")
        if password.startswith(PREFIX):
            key_id, dot, _ = password[len(PREFIX):].partition(".")
            key = self._keys.get(key_id) if dot else None
            if key is None:  # malformed, or signed by a key no longer configured
                raise TokenError("invalid")
            header, candidates = f"{PREFIX}{key_id}.", [key]
        elif password.startswith(LEGACY_PREFIX):
            header, candidates = LEGACY_PREFIX, list(self._keys.values())
        else:
            raise TokenError("invalid")
        signed, dot, mac_text = password.rpartition(".")
        body = signed[len(header):]
        if (not dot or len(signed) <= len(header) or not _B64URL.fullmatch(body)
                or not _B64URL.fullmatch(mac_text)):
            raise TokenError("invalid")
        # Compare the MAC as text: its last base64 character carries two spare bits, and a
        # byte comparison would accept four spellings of one MAC.
        if not any(hmac.compare_digest(mac_text, _b64encode(_mac(key, signed)))
                   for key in candidates):
            raise TokenError("invalid")
        try:
            raw = json.loads(_b64decode(body))
        except (UnicodeDecodeError, ValueError):
            raise TokenError("invalid") from None
        # Authentic yet malformed only happens with a bug or a reused key: still refuse.
        if (not isinstance(raw, dict) or raw.keys() != _CLAIM_KEYS.keys()
                or any(type(raw[k]) is not t for k, t in _CLAIM_KEYS.items())):
            raise TokenError("invalid")
        return TokenClaims(principal_arn=raw["arn"], account=raw["acct"], user_id=raw["uid"],
                           access_key_id=raw["akid"], issued_at=raw["iat"],
                           expires_at=raw["exp"])



def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()


def authorization_token(password: str) -> str:
    """ECR's ``authorizationToken``: standard base64 of ``"AWS:" + password``."""
    return base64.b64encode(f"AWS:{password}".encode()).decode("ascii")


def parse_basic(header_value: str) -> tuple[str, str] | None:
    """Split an ``Authorization: Basic <base64(user:password)>`` value.

    Returns:
        (user, password), or None when the value is not well-formed Basic credentials (wrong
        scheme, bad base64, not UTF-8, no colon). The caller answers None with a 401.
    """
    scheme, _, encoded = header_value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # Callers have checked the alphabet; a length of 1 mod 4 is not base64 at all.
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("invalid") from None
