"""Who is calling: SigV4 on the ECR API, ``AWS:<token>`` Basic credentials on /v2/.

Failures become the wire errors each API expects (ECR ``__type`` or OCI ``UNAUTHORIZED``);
nothing here ever logs or echoes a credential.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from datetime import datetime, timezone
from typing import Callable

from aiohttp import web

from registry.appkeys import AUTHENTICATOR
from registry.auth.credential_cache import CredentialCache, TTLMap
from registry.auth.identities import User
from registry.auth.principal import Principal
from registry.auth.sigv4 import (
    CheckedHeader, HttpRequestView, SigV4Error, check_header, verify_body,
)
from registry.auth.tokens import TokenClaims, TokenError, TokenSigner, parse_basic
from registry.ecr import errors as ecr_errors
from registry.oci.errors import Unauthorized


_VERIFIED_MAX = 10_000
_HOST_CHARACTERS = re.compile(r"[A-Za-z0-9.:\[\]-]+")


def principal_for(user: User, access_key_id: str = "") -> Principal:
    return Principal(arn=user.arn, account=user.account, kind="user", name=user.name,
                     user_id=user.id, access_key_id=access_key_id)


def registry_host(request: web.Request) -> str:
    """The host the client addressed (for realms and hints); characters that cannot be part
    of a host are dropped so a forged Host header cannot break a quoted header value."""
    host = request.host or ""
    return host if _HOST_CHARACTERS.fullmatch(host) else "".join(
        _HOST_CHARACTERS.findall(host)) or "localhost"


class Authenticator:
    def __init__(self, *, credentials: CredentialCache, tokens: TokenSigner, region: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.credentials = credentials
        self.tokens = tokens
        self.region = region
        # Verified token -> its claims. An entry lives no longer than a cached credential, so
        # the memo never outlasts the key check that ``registry`` repeats on every request.
        self._verified = TTLMap(credentials.ttl, _VERIFIED_MAX, clock)

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

    async def registry(self, request: web.Request) -> Principal | None:
        """The caller of a /v2/ request, or None when it sent no credentials.

        Raises:
            Unauthorized: credentials that are malformed, forged, expired or revoked.
        """
        verified = await self.registry_password(request)
        if verified is None:
            return None
        claims = verified[1]
        return Principal(arn=claims.principal_arn, account=claims.account, kind="user",
                         name=claims.principal_arn.rsplit("/", 1)[-1], user_id=claims.user_id,
                         access_key_id=claims.access_key_id)

    async def registry_password(self, request: web.Request) -> tuple[str, TokenClaims] | None:
        """The registry password a request carries and its claims, once they are good.

        Accepts ``Basic base64(AWS:<password>)`` (docker, ECR's scheme) and ``Bearer
        <password>`` (what clients send after fetching the same password from the realm,
        see ``registry_token``). A password is honoured only while the access key that
        obtained it is active and still belongs to the same user: deleting the user, or
        deleting or deactivating the key, ends it within the credential cache's TTL in every
        worker, since each checks the key through its own cache on every request.

        Returns:
            (password, claims), or None when the request sent no Authorization header.

        Raises:
            Unauthorized: credentials that are malformed, forged, expired or revoked.
        """
        password = self._password(request)
        if password is None:
            return None
        claims = self._claims(request, password)
        found = await self.credentials.lookup(claims.access_key_id)
        if found is None or found[0].id != claims.user_id:
            raise self.challenge(request, "authorization token is no longer valid: the access "
                                 "key that obtained it was deleted or deactivated, or its user "
                                 "was deleted; " + _login_hint(request))
        return password, claims

    def _password(self, request: web.Request) -> str | None:
        """Raises: Unauthorized for credentials that are not a registry password."""
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        basic = parse_basic(header)
        if basic is None or basic[0] != "AWS":
            raise self.challenge(request, "invalid credentials: use 'AWS' and a token from "
                                 "GetAuthorizationToken")
        return basic[1]

    def _claims(self, request: web.Request, password: str) -> TokenClaims:
        """The password's claims, from the memo or one HMAC check.

        Raises: Unauthorized (invalid or expired).
        """
        now = time.time()
        hit, claims = self._verified.get(password)
        if not hit:
            try:
                claims = self.tokens.verify(password, now=now)
            except TokenError as exc:
                if exc.reason == "expired":
                    raise self.challenge(request, "authorization token has expired: "
                                         + _login_hint(request)) from None
                raise self.challenge(request, f"authorization token {exc}") from None
            # A docker pull's dozens of requests pay for one HMAC check, not one each.
            self._verified.put(password, claims)
        elif now >= claims.expires_at:
            raise self.challenge(request, "authorization token has expired: "
                                 + _login_hint(request))
        return claims

    def challenge(self, request: web.Request,
                  message: str = "authentication required") -> Unauthorized:
        """A 401 with ECR's Basic challenge. The realm is this registry's own URL, as ECR's
        ``https://<host>/`` is: clients that treat any realm as a token service (oras-py)
        then ask this registry, which answers at ``GET /`` (``registry_token``)."""
        realm = f"{request.scheme}://{registry_host(request)}/"
        return Unauthorized(message, headers={
            "WWW-Authenticate": f'Basic realm="{realm}",service="ecr.amazonaws.com"'})


def _login_hint(request: web.Request) -> str:
    return (f"run 'aws ecr get-login-password | docker login --username AWS "
            f"--password-stdin {registry_host(request)}' again")


async def registry_token(request: web.Request) -> web.Response:
    """``GET /`` with registry credentials: the Docker token-service answer for clients that
    fetch a token from any challenge's realm. The token is the same registry password (it is
    already a signed, expiring bearer credential), so this grants nothing the caller did not
    hold; without valid credentials the answer is the usual 401 challenge.

    Raises: Unauthorized.
    """
    authenticator = request.app.get(AUTHENTICATOR)
    if authenticator is None:
        raise web.HTTPNotFound()
    verified = await authenticator.registry_password(request)
    if verified is None:
        raise authenticator.challenge(request, "Not Authorized")
    password, claims = verified
    issued = datetime.fromtimestamp(claims.issued_at, timezone.utc)
    body = {"token": password, "access_token": password,
            "expires_in": max(0, int(claims.expires_at - time.time())),
            "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


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
        view = dataclasses.replace(self._view, body_sha256=hashlib.sha256(body).hexdigest())
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
