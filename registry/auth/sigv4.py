"""Server-side AWS Signature Version 4 verification: pure, synchronous, no I/O.

``verify(view, lookup_secret=..., region=..., service=..., now=...)`` returns who signed the
request or raises ``SigV4Error`` carrying the ``__type`` and message a JSON 1.1 service answers
with (reference 1.2). The caller renders the error; this module never logs.

Checks run in the order AWS runs them (real answers recorded by dynalite), so a request with
several faults gets the error AWS would give first:

1. mechanism: ``Authorization`` header or ``X-Amz-Algorithm`` query string, never both;
2. completeness: key=value pairs, required parameters, a request date;
3. date format, then clock (±max_skew; presigned URLs: ``X-Amz-Expires`` into the past);
4. ``host`` signed, then the headers the caller requires signed (for ECR ``x-amz-target``
   and ``content-type``); algorithm; a five-part credential;
5. credential scope: region, service, terminator, date (all faults in one message);
6. access key known; 7. signature (constant time); 8. session token.

Steps 1-6 need no body: ``check_header`` runs them alone, so a server can refuse an unsigned
or unknown caller before reading a byte of its body; ``verify_body`` finishes with 7-8, and
``verify`` is the two in a row.

Messages never carry the Authorization header, a secret or a session token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

# The wire vocabulary is re-exported: callers and tests import it from here.
from registry.auth.sigv4_wire import (  # noqa: F401
    ALGORITHM, INCOMPLETE, INVALID, MISSING, MSG_BOTH, MSG_HOST_UNSIGNED, MSG_MISMATCH,
    MSG_MISSING, MSG_UNRECOGNIZED, UNRECOGNIZED, HttpRequestView, SigV4Error,
    canonical_request as _canonical_request, clip as _clip, msg_serves_region, msg_unsigned,
    parse_query as _parse_query, signing_key as _signing_key,
)

MAX_PRESIGN_EXPIRES = 604800  # one week, the SigV4 ceiling for presigned URLs
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature",
                 "X-Amz-SignedHeaders", "X-Amz-Date")


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature checked out: the signer and what the signature covers."""

    access_key_id: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    timestamp: datetime  # the signed request time, UTC
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Auth:
    algorithm: str
    credential: str
    signed_headers: str
    signature: str
    date: str
    date_is_rfc1123: bool
    presigned: bool  # query-string authentication
    expires: str | None  # X-Amz-Expires, presigned URLs only
    token: str | None  # X-Amz-Security-Token, from the query string or a header


@dataclass(frozen=True)
class CheckedHeader:
    """A request whose SigV4 parts passed every check that does not need the body.

    Carries what ``verify_body`` needs to finish: the parsed authorization, the canonical
    inputs taken from the headers and query, and the signer's secret (never in a repr).
    """

    access_key_id: str
    region: str
    service: str
    scope_date: str
    signed_headers: tuple[str, ...]
    timestamp: datetime
    auth: _Auth = field(repr=False)
    headers: dict[str, list[str]] = field(repr=False)
    query: list[tuple[bytes, bytes]] = field(repr=False)
    secret: str = field(repr=False)


def check_header(request: HttpRequestView, *, lookup_secret: Callable[[str], str | None],
                 region: str, service: str, now: datetime,
                 max_skew: timedelta = timedelta(minutes=5),
                 required_headers: Sequence[str] = ()) -> CheckedHeader:
    """Steps 1-6 of the verification: everything but the signature over the body.

    A server runs this before it reads a body, so an unsigned or unknown caller never makes
    it buffer one. ``request.body_sha256`` is not read.

    Args:
        lookup_secret: access key id -> secret access key, or None when the key is unknown
            or inactive.
        now: the server clock (aware; a naive value is taken as UTC).
        required_headers: header names (as AWS spells them in messages, e.g. "X-Amz-Target")
            that must be among the signed headers besides host: for a JSON API the target
            and content type choose the operation and how the body is read.

    Returns:
        The checked header, to be finished by ``verify_body``.

    Raises:
        SigV4Error: MissingAuthenticationTokenException (no SigV4 at all),
            IncompleteSignatureException (malformed header, query or date),
            InvalidSignatureException (clock skew, wrong scope, unsigned host or required
            header), UnrecognizedClientException (unknown access key).
    """
    now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers.setdefault(name.lower(), []).append(value)
    query = _parse_query(request.raw_query)
    auth = _parse_auth(headers, dict(query))
    timestamp = _parse_date(auth)
    past = max_skew if auth.expires is None else timedelta(seconds=_parse_expires(auth.expires))
    _check_clock(timestamp, now, past=past, future=max_skew)
    names, access_key_id, date = _check_credential(auth, timestamp, region=region,
                                                   service=service,
                                                   required_headers=required_headers)
    secret = lookup_secret(access_key_id)
    if secret is None:
        raise SigV4Error(UNRECOGNIZED, MSG_UNRECOGNIZED)
    return CheckedHeader(access_key_id=access_key_id, region=region, service=service,
                         scope_date=date, signed_headers=tuple(names), timestamp=timestamp,
                         auth=auth, headers=headers, query=query, secret=secret)


def verify_body(request: HttpRequestView, checked: CheckedHeader, *,
                session_token_valid: Callable[[str, str], bool] | None = None
                ) -> VerifiedRequest:
    """Steps 7-8: the signature over the canonical request (body hash included), then the
    session token.

    Args:
        request: the same request ``check_header`` saw, now with ``body_sha256`` set.
        checked: what ``check_header`` returned for it.
        session_token_valid: (access key id, token) -> whether Berth issued that token for
            that key. Without it every request carrying ``X-Amz-Security-Token`` is refused.

    Returns:
        The verified signer, scope, signed header names and request time.

    Raises:
        SigV4Error: InvalidSignatureException (bad signature, a signed header not received,
            a payload hash header that is not the body's), UnrecognizedClientException
            (unaccepted session token).
    """
    auth = checked.auth
    # The signature cannot sign itself: a presigned URL's X-Amz-Signature is left out.
    signed_query = [(k, v) for k, v in checked.query
                    if not (auth.presigned and k == b"X-Amz-Signature")]
    canonical = _canonical_request(request, checked.headers, list(checked.signed_headers),
                                   signed_query)
    scope = f"{checked.scope_date}/{checked.region}/{checked.service}/aws4_request"
    string_to_sign = "\n".join((ALGORITHM, checked.timestamp.strftime(_TIMESTAMP), scope,
                                hashlib.sha256(canonical).hexdigest()))
    key = _signing_key(checked.secret, checked.scope_date, checked.region, checked.service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), auth.signature.encode("ascii", "replace")):
        raise SigV4Error(INVALID, MSG_MISMATCH)
    # AWS checks the token only after the signature: a forged request learns nothing about it.
    if auth.token is not None:
        if session_token_valid is None or not session_token_valid(checked.access_key_id,
                                                                  auth.token):
            raise SigV4Error(UNRECOGNIZED, MSG_UNRECOGNIZED)
    return VerifiedRequest(access_key_id=checked.access_key_id, region=checked.region,
                           service=checked.service, signed_headers=checked.signed_headers,
                           timestamp=checked.timestamp, session_token=auth.token)


def verify(request: HttpRequestView, *, lookup_secret: Callable[[str], str | None],
           region: str, service: str, now: datetime,
           max_skew: timedelta = timedelta(minutes=5),
           session_token_valid: Callable[[str, str], bool] | None = None,
           required_headers: Sequence[str] = ()) -> VerifiedRequest:
    """Verify the SigV4 signature of ``request`` for ``service`` in ``region`` at time ``now``:
    ``check_header`` then ``verify_body``.

    Args:
        lookup_secret: access key id -> secret access key, or None when the key is unknown.
        now: the server clock (aware; a naive value is taken as UTC).
        session_token_valid: (access key id, token) -> whether Berth issued that token for
            that key. Without it every request carrying ``X-Amz-Security-Token`` is refused.
        required_headers: headers that must be signed besides host (see ``check_header``).

    Returns:
        The verified signer, scope, signed header names and request time.

    Raises:
        SigV4Error: MissingAuthenticationTokenException (no SigV4 at all),
            IncompleteSignatureException (malformed header, query or date),
            InvalidSignatureException (clock skew, wrong scope, unsigned host or required
            header, bad signature), UnrecognizedClientException (unknown access key,
            unaccepted session token).
    """
    checked = check_header(request, lookup_secret=lookup_secret, region=region,
                           service=service, now=now, max_skew=max_skew,
                           required_headers=required_headers)
    return verify_body(request, checked, session_token_valid=session_token_valid)


def _check_credential(auth: _Auth, timestamp: datetime, *, region: str, service: str,
                      required_headers: Sequence[str]) -> tuple[list[str], str, str]:
    """Host and required headers signed, algorithm, credential shape and scope, in AWS's
    order.

    Returns:
        (signed header names as the client listed them, access key id, scope date).
    """
    names = [n.strip().lower() for n in auth.signed_headers.split(";")]
    if "host" not in names:
        raise SigV4Error(INVALID, MSG_HOST_UNSIGNED)
    for required in required_headers:
        if required.lower() not in names:
            raise SigV4Error(INVALID, msg_unsigned(required))
    if auth.algorithm != ALGORITHM:
        raise SigV4Error(INCOMPLETE, f"Unsupported AWS 'algorithm': '{_clip(auth.algorithm)}' "
                                     f"(only {ALGORITHM} for now). ")
    parts = auth.credential.rstrip("/").split("/")  # AWS ignores trailing slashes here
    if len(parts) != 5:
        raise SigV4Error(INCOMPLETE, "Credential must have exactly 5 slash-delimited elements, "
                                     "e.g. keyid/date/region/service/term, got "
                                     f"'{_clip(auth.credential)}'")
    access_key_id, date, scope_region, scope_service, terminator = parts
    # AWS reports every scope fault at once; each sentence but the date one ends in ". ".
    # The service sentence names the service the server expects, not the one received.
    problems = []
    if scope_region != region:
        problems.append(f"Credential should be scoped to a valid region, not "
                        f"'{_clip(scope_region)}'. ")
    if scope_service != service:
        problems.append(f"Credential should be scoped to correct service: '{service}'. ")
    if terminator != "aws4_request":
        problems.append("Credential should be scoped with a valid terminator: 'aws4_request', "
                        f"not '{_clip(terminator)}'. ")
    if date != timestamp.strftime("%Y%m%d"):
        problems.append("Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                        f"of date from HTTP: '{_clip(date)}' != '{timestamp:%Y%m%d}', from "
                        f"'{timestamp.strftime(_TIMESTAMP)}'.")
    if problems:
        message = "".join(problems)
        if scope_region != region:
            # Not AWS's: an AWS endpoint names its region in its host name, Berth's does not.
            message += ("" if message.endswith(" ") else " ") + msg_serves_region(region)
        raise SigV4Error(INVALID, message)
    return names, access_key_id, date


def _parse_auth(headers: dict[str, list[str]], query: dict[bytes, bytes]) -> _Auth:
    header = headers.get("authorization", [None])[0]
    # A session token anywhere in the request must be accepted, signed or not.
    token = headers.get("x-amz-security-token", [None])[0]
    if b"X-Amz-Algorithm" in query:
        if header is not None:
            raise SigV4Error(INVALID, MSG_BOTH)
        return _parse_query_auth(query, token)
    if header is None or not header.strip().startswith("AWS4-"):
        raise SigV4Error(MISSING, MSG_MISSING)
    algorithm, _, rest = header.strip().partition(" ")
    # botocore joins the parts with ", "; other signers use "," or spaces: split on both.
    params: dict[str, str] = {}
    for pair in filter(None, re.split(r"[,\s]+", rest)):
        key, equal, value = pair.partition("=")
        if not equal:
            raise SigV4Error(INCOMPLETE, f"'{_clip(pair)}' not a valid key=value pair (missing "
                                         "equal-sign) in Authorization header.")
        params[key] = value
    problems = [f"Authorization header requires '{name}' parameter."
                for name in ("Credential", "Signature", "SignedHeaders") if not params.get(name)]
    amz_date = headers.get("x-amz-date", [""])[0]
    http_date = headers.get("date", [""])[0]
    if not amz_date and not http_date:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or "
                        "a 'Date' header.")
    if problems:
        # AWS appends "Authorization=<header>"; the header stays out of messages and logs here.
        raise SigV4Error(INCOMPLETE, " ".join(problems))
    return _Auth(algorithm=algorithm, credential=params["Credential"],
                 signed_headers=params["SignedHeaders"], signature=params["Signature"],
                 date=amz_date or http_date, date_is_rfc1123=not amz_date, presigned=False,
                 expires=None, token=token)


def _parse_query_auth(query: dict[bytes, bytes], header_token: str | None) -> _Auth:
    values = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
              for k, v in query.items()}
    missing = [f"AWS query-string parameters must include '{name}'."
               for name in _QUERY_PARAMS if not values.get(name)]
    if missing:
        raise SigV4Error(INCOMPLETE, " ".join(missing) + " Re-examine the query-string parameters.")
    return _Auth(algorithm=values["X-Amz-Algorithm"], credential=values["X-Amz-Credential"],
                 signed_headers=values["X-Amz-SignedHeaders"],
                 signature=values["X-Amz-Signature"], date=values["X-Amz-Date"],
                 date_is_rfc1123=False, presigned=True, expires=values.get("X-Amz-Expires"),
                 token=values.get("X-Amz-Security-Token", header_token))


def _parse_date(auth: _Auth) -> datetime:
    try:
        if auth.date_is_rfc1123:
            # An HTTP-date is GMT; botocore writes it with "-0000", which parses as naive.
            parsed = parsedate_to_datetime(auth.date)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=timezone.utc)
            return parsed.astimezone(timezone.utc)
        elif _AMZ_DATE.fullmatch(auth.date):
            return datetime.strptime(auth.date, _TIMESTAMP).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        pass
    raise SigV4Error(INCOMPLETE, f"Date must be in ISO-8601 'basic format'. Got "
                                 f"'{_clip(auth.date)}'. See http://en.wikipedia.org/wiki/ISO_8601")


def _parse_expires(raw: str) -> int:
    # S3's wording: the JSON services publish none for presigned-URL limits.
    if not re.fullmatch(r"-?[0-9]{1,12}", raw):
        raise SigV4Error(INCOMPLETE, "X-Amz-Expires should be a number")
    expires = int(raw)
    if expires < 0:
        raise SigV4Error(INCOMPLETE, "X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise SigV4Error(INCOMPLETE, "X-Amz-Expires must be less than a week (in seconds) that "
                                     f"is; {MAX_PRESIGN_EXPIRES}")
    return expires


def _check_clock(timestamp: datetime, now: datetime, *, past: timedelta,
                 future: timedelta) -> None:
    def fmt(moment: datetime) -> str:
        return moment.strftime(_TIMESTAMP)

    earliest, latest = now - past, now + future
    if timestamp < earliest:
        raise SigV4Error(INVALID, f"Signature expired: {fmt(timestamp)} is now earlier than "
                                  f"{fmt(earliest)} ({fmt(now)} - {_span(past)}.)")
    if timestamp > latest:
        raise SigV4Error(INVALID, f"Signature not yet current: {fmt(timestamp)} is still later "
                                  f"than {fmt(latest)} ({fmt(now)} + {_span(future)}.)")


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} sec"
