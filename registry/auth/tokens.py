"""Registry passwords for ``docker login``: what ECR's GetAuthorizationToken hands out.

A password is stateless and self-verifying, so every worker process (and every node holding
the same key) checks it with one HMAC and no database round trip::

    bt1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(key, "bt1." + claims part))>

- ``bt1.`` versions the format; it is inside the MAC, so a token cannot be re-labelled.
- The MAC covers the *encoded* claims text, so non-canonical base64 or inserted characters
  change what is authenticated and fail, and no JSON is parsed before the MAC checks out.
- URL-safe, unpadded, no whitespace (ECR's ``authorizationToken`` pattern is ``^\\S+$``), and
  a few hundred bytes: far below the credential-helper and header limits docker works with.

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

PREFIX = "bt1."
DEFAULT_TTL = 12 * 3600  # ECR: expiresAt = issue time + 12 hours
MAX_PASSWORD_LENGTH = 2048
MIN_KEY_LENGTH = 32
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
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
    """Issues and verifies registry passwords under one HMAC key.

    Every process that must accept a password needs the same key; the caller derives it from
    the master key (e.g. HKDF with a "registry-token" label) so it is never the master itself.
    """

    def __init__(self, key: bytes) -> None:
        """Raises: ValueError when ``key`` is shorter than 32 bytes."""
        if not isinstance(key, bytes) or len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"token key must be at least {MIN_KEY_LENGTH} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "TokenSigner(key=<redacted>)"

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
        signed = PREFIX + body
        password = signed + "." + _b64encode(self._mac(signed))
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
        if (not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH
                or not password.startswith(PREFIX)):
            raise TokenError("invalid")
        signed, dot, mac_text = password.rpartition(".")
        body = signed[len(PREFIX):]
        if not dot or not _B64URL.fullmatch(body) or not _B64URL.fullmatch(mac_text):
            raise TokenError("invalid")
        # Compare the MAC as text: its last base64 character carries two spare bits, and a
        # byte comparison would accept four spellings of one MAC.
        if not hmac.compare_digest(mac_text, _b64encode(self._mac(signed))):
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

    def _mac(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode("ascii"), hashlib.sha256).digest()


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
