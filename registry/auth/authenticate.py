"""Who is calling: SigV4 on the ECR API, ``AWS:<token>`` Basic credentials on /v2/.

Failures become the wire errors each API expects (ECR ``__type`` or OCI ``UNAUTHORIZED``);
nothing here ever logs or echoes a credential.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone

from aiohttp import web

from registry.auth.credential_cache import CredentialCache
from registry.auth.identities import User
from registry.auth.principal import Principal
from registry.auth.sigv4 import (
    CheckedHeader, HttpRequestView, SigV4Error, check_header, verify_body,
)
from registry.auth.tokens import TokenError, TokenSigner, parse_basic
from registry.ecr import errors as ecr_errors
from registry.oci.errors import Unauthorized


_VERIFIED_MAX = 10_000


def principal_for(user: User, access_key_id: str = "") -> Principal:
    return Principal(arn=user.arn, account=user.account, kind="user", name=user.name,
                     user_id=user.id, access_key_id=access_key_id)


class Authenticator:
    def __init__(self, *, credentials: CredentialCache, tokens: TokenSigner, region: str,
                 realm: str = "Berth") -> None:
        self.credentials = credentials
        self.tokens = tokens
        self.region = region
        self.realm = realm
        self._verified: dict[str, tuple[float, Principal]] = {}

    async def sigv4(self, request: web.Request, *, service: str,
                    required_headers: tuple[str, ...] = ()) -> "PendingSignature":
        """Check a SigV4-signed API request as far as possible without its body.

        Everything AWS checks before the signature runs here (parse, date and clock, signed
        host and ``required_headers``, credential scope, an active access key), so an
        unsigned or unknown caller is refused before a byte of its body is read. The
        returned ``PendingSignature`` finishes with the body.

        Raises:
            ECRError subclasses named as AWS names them (reference 1.2).
        """
        key_id = _access_key_hint(request)
        found = await self.credentials.lookup(key_id) if key_id else None
        # The raw query: aiohttp's decoded query_string would break presigned values.
        raw_path, _, raw_query = request.raw_path.partition("?")
        view = HttpRequestView(method=request.method, raw_path=raw_path, raw_query=raw_query,
                               headers=tuple(request.headers.items()), body_sha256="")
        try:
            checked = check_header(view, lookup_secret=lambda k: found[1] if found and
                                   k == key_id else None, region=self.region,
                                   service=service, now=datetime.now(timezone.utc),
                                   required_headers=required_headers)
        except SigV4Error as exc:
            raise _ecr_error(exc) from None
        assert found is not None and checked.access_key_id == key_id
        return PendingSignature(view, checked, principal_for(found[0], key_id))

    def registry(self, request: web.Request) -> Principal | None:
        """The caller of a /v2/ request, or None when it sent no credentials.

        Raises:
            Unauthorized: credentials that are malformed, forged or expired.
        """
        header = request.headers.get("Authorization")
        if header is None:
            return None
        basic = parse_basic(header)
        if basic is None or basic[0] != "AWS":
            raise self.challenge("invalid credentials: use 'AWS' and a token from "
                                 "GetAuthorizationToken")
        now = time.time()
        known = self._verified.get(basic[1])
        if known is not None and now < known[0]:
            return known[1]
        try:
            claims = self.tokens.verify(basic[1], now=now)
        except TokenError as exc:
            raise self.challenge(f"authorization token {exc}") from None
        principal = Principal(arn=claims.principal_arn, account=claims.account, kind="user",
                              name=claims.principal_arn.rsplit("/", 1)[-1],
                              user_id=claims.user_id)
        # A verified token stays valid until it expires: remember it, so a docker pull's
        # dozens of requests pay for one HMAC check, not one each.
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[basic[1]] = (claims.expires_at, principal)
        return principal

    def challenge(self, message: str = "authentication required") -> Unauthorized:
        return Unauthorized(message, headers={
            "WWW-Authenticate": f'Basic realm="{self.realm}",service="ecr.amazonaws.com"'})


class PendingSignature:
    """A request whose SigV4 header checked out; its signature awaits the body."""

    def __init__(self, view: HttpRequestView, checked: CheckedHeader,
                 principal: Principal) -> None:
        self._view = view
        self._checked = checked
        self._principal = principal

    def __repr__(self) -> str:
        return f"PendingSignature(access_key_id={self._checked.access_key_id!r})"

    def verify(self, body: bytes) -> Principal:
        """The signer, once the signature over ``body`` checks out.

        Raises:
            ECRError subclasses named as AWS names them (reference 1.2).
        """
        header_view = self._view
        view = HttpRequestView(method=header_view.method, raw_path=header_view.raw_path,
                               raw_query=header_view.raw_query, headers=header_view.headers,
                               body_sha256=hashlib.sha256(body).hexdigest())
        try:
            verify_body(view, self._checked)
        except SigV4Error as exc:
            raise _ecr_error(exc) from None
        return self._principal


def _ecr_error(exc: SigV4Error) -> ecr_errors.ECRError:
    return getattr(ecr_errors, exc.type_name, ecr_errors.InvalidSignatureException)(
        exc.message)


def _access_key_hint(request: web.Request) -> str | None:
    """The access key id the request claims (verified by ``check_header`` afterwards).

    Cheap on purpose: it runs for every API request, signed or not, before anything else.
    """
    header = request.headers.get("Authorization", "")
    marker = "Credential="
    if marker in header:
        return header.split(marker, 1)[1].split("/", 1)[0].strip() or None
    credential = request.query.get("X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0] or None
    return None
