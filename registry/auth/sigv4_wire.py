"""SigV4's wire vocabulary and canonical form: AWS's error types and messages, the view of a
received request, and the canonical request and signing key both sides compute.

Split from ``registry.auth.sigv4`` (the verification flow), which re-exports these names.
Pure, synchronous, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
INCOMPLETE = "IncompleteSignatureException"
INVALID = "InvalidSignatureException"
UNRECOGNIZED = "UnrecognizedClientException"
MISSING = "MissingAuthenticationTokenException"

MSG_MISSING = "Missing Authentication Token"
MSG_UNRECOGNIZED = "The security token included in the request is invalid."
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details.")
MSG_BOTH = ("Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as "
            "HTTP header.")
MSG_HOST_UNSIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."


def msg_unsigned(header: str) -> str:
    """AWS's wording for a required header left out of SignedHeaders (as for Host)."""
    return f"'{header}' must be a 'SignedHeader' in the AWS Authorization."


def msg_serves_region(region: str) -> str:
    """Berth's sentence after AWS's wrong-region one: which region to configure instead."""
    return f"This Berth endpoint serves region '{region}'."



class SigV4Error(Exception):
    """A failed verification, as the AWS wire error ``{"__type": type_name, "message": ...}``."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message

    def __repr__(self) -> str:
        return f"SigV4Error({self.type_name!r}, {self.message!r})"


@dataclass(frozen=True)
class HttpRequestView:
    """What the verifier needs from a received request.

    ``raw_path`` and ``raw_query`` are exactly as received (still percent-encoded, no ``?``);
    ``headers`` are all received headers in order, repeats allowed, values decoded as UTF-8;
    ``body_sha256`` is the hex SHA-256 of the raw body bytes.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]
    body_sha256: str


def parse_query(raw_query: str) -> list[tuple[bytes, bytes]]:
    """Decoded (key, value) byte pairs in received order; bytes keep invalid UTF-8 lossless."""
    if not raw_query:
        return []
    pairs = []
    for pair in raw_query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((unquote_to_bytes(key), unquote_to_bytes(value)))
    return pairs


def canonical_request(request: HttpRequestView, headers: dict[str, list[str]],
                       names: list[str], query: list[tuple[bytes, bytes]]) -> bytes:
    """The canonical request bytes, built from the client's SignedHeaders list.

    Raises:
        SigV4Error: InvalidSignatureException when a signed header was not received.
    """
    # The path is quoted as received (so "%2F" becomes "%252F"), exactly as botocore does for
    # every service but S3.
    path = remove_dot_segments(request.raw_path or "/")
    uri = quote(path.encode("utf-8", "surrogateescape"), safe="/~")
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in query)
    lines = []
    for name in names:
        values = headers.get(name)
        if values is None:
            raise SigV4Error(INVALID, MSG_MISMATCH)
        lines.append(f"{name}:" + ",".join(" ".join(v.split()) for v in values))
    # botocore signs X-Amz-Content-SHA256 verbatim when present. The JSON APIs have no
    # unsigned-payload mode, so a claim other than the received body's hash (UNSIGNED-PAYLOAD
    # included) would leave the body unauthenticated: refuse it.
    payload = headers.get("x-amz-content-sha256", [request.body_sha256])[0]
    if payload.lower() != request.body_sha256.lower():
        raise SigV4Error(INVALID, MSG_MISMATCH)
    text = "\n".join((request.method.upper(), uri, "&".join(f"{k}={v}" for k, v in encoded),
                      "\n".join(lines) + "\n", ";".join(names), payload))
    # surrogateescape: text a server decoded that way (aiohttp does) hashes as received bytes.
    return text.encode("utf-8", "surrogateescape")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 plus collapsing of repeated slashes, as botocore normalises paths."""
    segments = [s for s in path.split("/") if s and s != "."]
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


@lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning for one (secret, day, region, service); cached so a hot key costs one HMAC.

    Keyed by the secret itself, so a rotated secret can never pick up a stale derived key;
    lru_cache is thread-safe and bounded.
    """
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def clip(value: str, limit: int = 128) -> str:
    """Bound client-supplied text echoed in messages."""
    return value if len(value) <= limit else value[:limit] + "..."
