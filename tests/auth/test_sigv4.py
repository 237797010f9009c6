"""SigV4 verification against real botocore signatures (reference 1.2 and 1.3).

Every request here is signed by botocore's own ``SigV4Auth`` / ``SigV4QueryAuth`` exactly as
boto3 and the aws CLI sign ECR calls; the verifier must accept those and give AWS's exact
``__type`` and message for every way a request can be wrong. The clock is injected: ``at`` is
the time the request says it was signed, and each case picks the server's ``now`` from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from functools import cache
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from registry.auth import sigv4
from registry.auth.sigv4 import (
    INCOMPLETE, INVALID, MISSING, MSG_BOTH, MSG_HOST_UNSIGNED, MSG_MISMATCH, MSG_MISSING,
    MSG_UNRECOGNIZED, UNRECOGNIZED, HttpRequestView, SigV4Error, verify,
)

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
REGION = "us-east-1"
URL = "http://127.0.0.1:5000/"  # a non-default port: Host carries it and so does the signature
TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
BODY = b'{"repositoryNames": ["app"]}'
ECR_HEADERS = {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}
KEYS = {AKID: SECRET}


@dataclass(frozen=True)
class Signed:
    view: HttpRequestView
    at: datetime  # the signing time the request states


def sign(*, method: str = "POST", url: str = URL, body: bytes = BODY,
         headers: dict[str, str] | None = None, repeated: tuple[tuple[str, str], ...] = (),
         service: str = "ecr", region: str = REGION, secret: str = SECRET,
         token: str | None = None, presign: int | None = None) -> Signed:
    """Sign with botocore and return the request as the server would receive it."""
    request = AWSRequest(method=method, url=url, data=body,
                         headers=dict(ECR_HEADERS if headers is None else headers))
    for name, value in repeated:
        request.headers.add_header(name, value)  # botocore signs repeats joined by ","
    credentials = Credentials(AKID, secret, token)
    if presign is None:
        SigV4Auth(credentials, service, region).add_auth(request)
    else:
        SigV4QueryAuth(credentials, service, region, expires=presign).add_auth(request)
    parts = urlsplit(request.url)
    wire = list(request.headers.items())
    names = {name.lower() for name, _ in wire}
    if "content-length" not in names and body:
        wire.append(("Content-Length", str(len(body))))
    if "host" not in names:
        wire.append(("Host", wire_host(url)))  # what urllib3 puts on the wire
    view = HttpRequestView(method=method, raw_path=parts.path, raw_query=parts.query,
                           headers=tuple(wire), body_sha256=hashlib.sha256(body).hexdigest())
    return Signed(view, signing_time(view))


def wire_host(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}[parts.scheme]
    return parts.hostname if parts.port in (None, default) else f"{parts.hostname}:{parts.port}"


def signing_time(view: HttpRequestView) -> datetime:
    stamp = header(view, "x-amz-date") or dict(parse_qsl(view.raw_query)).get("X-Amz-Date")
    if stamp:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return parsedate_to_datetime(header(view, "date")).replace(tzinfo=timezone.utc)


def signature_of(signed: Signed) -> str:
    auth = header(signed.view, "authorization")
    if auth:
        return auth.split("Signature=")[1]
    return dict(parse_qsl(signed.view.raw_query))["X-Amz-Signature"]


def header(view: HttpRequestView, name: str) -> str | None:
    return next((v for n, v in view.headers if n.lower() == name), None)


def set_header(view: HttpRequestView, name: str, value: str) -> HttpRequestView:
    kept = [(n, v) for n, v in view.headers if n.lower() != name.lower()]
    return dataclasses.replace(view, headers=tuple(kept) + ((name, value),))


def drop_header(view: HttpRequestView, name: str) -> HttpRequestView:
    return dataclasses.replace(
        view, headers=tuple((n, v) for n, v in view.headers if n.lower() != name.lower()))


def edit_auth(view: HttpRequestView, edit: Callable[[str], str]) -> HttpRequestView:
    return set_header(view, "Authorization", edit(header(view, "authorization")))


def new_body(view: HttpRequestView, body: bytes) -> HttpRequestView:
    return dataclasses.replace(view, body_sha256=hashlib.sha256(body).hexdigest())


def check(view: HttpRequestView, now: datetime, **options):
    return verify(view, lookup_secret=KEYS.get, region=REGION, service="ecr", now=now,
                  **options)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


# --- requests that must verify ----------------------------------------------------------

def _date_header() -> Signed:
    # botocore signs with the RFC 1123 Date header instead of X-Amz-Date when one is present.
    return sign(headers={**ECR_HEADERS, "Date": "placeholder"})


def _unchanged(s: Signed) -> HttpRequestView:
    return s.view


# (description, how the request is signed, what happens to it on the way,
#  server clock offset in seconds, verify options)
ACCEPTED = [
    ("json 1.1 POST, host with port", sign, _unchanged, 0, {}),
    ("extra signed headers: sdk ids and content-length",
     lambda: sign(headers={**ECR_HEADERS, "amz-sdk-invocation-id": "7c9e-11",
                           "amz-sdk-request": "attempt=1; max=3", "Content-Length": "28"}),
     _unchanged, 0, {}),
    ("repeated header and ragged whitespace",
     lambda: sign(repeated=(("X-Amz-Meta-Tag", "  a   b "), ("X-Amz-Meta-Tag", "c"))),
     _unchanged, 0, {}),
    ("Date header instead of X-Amz-Date", _date_header, _unchanged, 0, {}),
    ("empty body", lambda: sign(body=b""), _unchanged, 0, {}),
    ("payload hash header equal to the body hash",
     lambda: sign(headers={**ECR_HEADERS,
                           "X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()}),
     _unchanged, 0, {}),
    ("GET with dot segments, escapes and a query",
     lambda: sign(method="GET", body=b"", headers={},
                  url="http://127.0.0.1:5000/v2/a%20b/./c//d/../e?z=1&a=%2F%20&a=0&flag"),
     _unchanged, 0, {}),
    ("default port: Host without port", lambda: sign(url="http://registry.example/"),
     _unchanged, 0, {}),
    ("an unsigned header added on the way", sign,
     lambda s: set_header(s.view, "User-Agent", "proxy/1.0"), 0, {}),
    ("Authorization parts without spaces", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace(", ", ",")), 0, {}),
    ("Authorization parts with extra spaces", sign,
     lambda s: edit_auth(s.view, lambda a: "  " + a.replace(", ", " ,   ") + " "), 0, {}),
    ("exactly 5 minutes old", sign, _unchanged, +300, {}),
    ("exactly 5 minutes ahead", sign, _unchanged, -300, {}),
    ("session token Berth issued", lambda: sign(token=TOKEN), _unchanged, 0,
     {"session_token_valid": lambda key, tok: (key, tok) == (AKID, TOKEN)}),
    ("presigned GET within X-Amz-Expires",
     lambda: sign(method="GET", body=b"", headers={}, presign=900,
                  url="http://127.0.0.1:5000/v2/app/blobs/sha256:ab?x-id=GetObject"),
     _unchanged, 14 * 60, {}),
]


@pytest.mark.parametrize("make,spoil,offset,options", [case[1:] for case in ACCEPTED],
                         ids=[case[0] for case in ACCEPTED])
def test_accepts_botocore_signatures(make, spoil, offset, options):
    signed = make()
    verified = check(spoil(signed), signed.at + timedelta(seconds=offset), **options)
    assert verified.access_key_id == AKID
    assert (verified.region, verified.service) == (REGION, "ecr")
    assert verified.timestamp == signed.at
    assert "host" in verified.signed_headers


def test_verified_request_reports_client_signed_headers_and_token():
    signed = sign(token=TOKEN, headers={**ECR_HEADERS, "amz-sdk-invocation-id": "1"})
    verified = check(signed.view, signed.at, session_token_valid=lambda key, tok: True)
    assert verified.signed_headers == ("amz-sdk-invocation-id", "content-type", "host",
                                       "x-amz-date", "x-amz-security-token", "x-amz-target")
    assert verified.session_token == TOKEN
    assert TOKEN not in repr(verified)


def boto3_request(call: Callable, **client_options) -> Signed:
    """What a real boto3 ECR client puts on the wire, captured at botocore's before-send hook."""
    captured = []

    class _Empty:
        def stream(self, **_):
            yield b"{}"

    def before_send(request, **_):
        captured.append(request)
        return AWSResponse(request.url, 200, {"x-amzn-RequestId": "test"}, _Empty())

    client = boto3.client("ecr", endpoint_url=URL.rstrip("/"), region_name=REGION,
                          aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                          **client_options)
    client.meta.events.register("before-send.ecr", before_send)
    call(client)
    sent = captured[0]
    wire = [(n, v.decode() if isinstance(v, bytes) else v) for n, v in sent.headers.items()]
    wire.append(("Host", wire_host(sent.url)))
    view = HttpRequestView(method=sent.method, raw_path=urlsplit(sent.url).path,
                           raw_query=urlsplit(sent.url).query, headers=tuple(wire),
                           body_sha256=hashlib.sha256(sent.body or b"").hexdigest())
    return Signed(view, signing_time(view))


@pytest.mark.parametrize("call", [
    lambda c: c.describe_repositories(repositoryNames=["app"]),
    lambda c: c.get_authorization_token(),
    lambda c: c.put_image(repositoryName="app", imageManifest='{"schemaVersion": 2}',
                          imageTag="v1"),
], ids=["DescribeRepositories", "GetAuthorizationToken", "PutImage"])
def test_accepts_a_real_boto3_ecr_client(call):
    signed = boto3_request(call)
    assert header(signed.view, "x-amz-target").startswith("AmazonEC2ContainerRegistry_V20150921.")
    assert check(signed.view, signed.at, **ECR_REQUIRED).access_key_id == AKID


def test_real_boto3_session_credentials_need_a_berth_issued_token():
    signed = boto3_request(lambda c: c.get_authorization_token(), aws_session_token=TOKEN)
    with pytest.raises(SigV4Error) as caught:
        check(signed.view, signed.at)
    assert (caught.value.type_name, caught.value.message) == (UNRECOGNIZED, MSG_UNRECOGNIZED)
    verified = check(signed.view, signed.at, session_token_valid=lambda key, tok: tok == TOKEN)
    assert verified.session_token == TOKEN


# --- requests that must fail, with AWS's exact error -------------------------------------

def _expired(s: Signed) -> str:
    now = s.at + timedelta(minutes=6)
    return (f"Signature expired: {stamp(s.at)} is now earlier than "
            f"{stamp(now - timedelta(minutes=5))} ({stamp(now)} - 5 min.)")


def _future(s: Signed) -> str:
    now = s.at - timedelta(minutes=6)
    return (f"Signature not yet current: {stamp(s.at)} is still later than "
            f"{stamp(now + timedelta(minutes=5))} ({stamp(now)} + 5 min.)")


def _scope_date(s: Signed) -> str:
    return ("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '20000101' != '{s.at:%Y%m%d}', from '{stamp(s.at)}'.")


def _presign_expired(s: Signed) -> str:
    now = s.at + timedelta(seconds=91)
    return (f"Signature expired: {stamp(s.at)} is now earlier than "
            f"{stamp(now - timedelta(seconds=90))} ({stamp(now)} - 90 sec.)")


def _both(s: Signed) -> HttpRequestView:
    presigned = sign(method="GET", body=b"", headers={}, presign=300)
    return set_header(presigned.view, "Authorization", header(s.view, "authorization"))


def _query(s: Signed, edit: Callable[[str], str]) -> HttpRequestView:
    return dataclasses.replace(s.view, raw_query=edit(s.view.raw_query))


def _presigned(**kw) -> Signed:
    return sign(method="GET", body=b"", headers={}, **kw)


def _without_query_param(name: str) -> Callable[[str], str]:
    return lambda q: "&".join(p for p in q.split("&") if not p.startswith(name + "="))


ECR_REQUIRED = {"required_headers": ("Content-Type", "X-Amz-Target")}


def _sign_without(*unsigned: str, **options) -> Callable[[], Signed]:
    """Sign an ECR request, then add ``unsigned`` headers the signature does not cover (as a
    hand-rolled signer that signs only host and x-amz-date sends them)."""
    def make() -> Signed:
        signed = sign(headers={k: v for k, v in ECR_HEADERS.items() if k not in unsigned},
                      **options)
        view = signed.view
        for name in unsigned:
            view = set_header(view, name, ECR_HEADERS[name])
        return Signed(view, signed.at)
    return make


NO_PARAMS = ("Authorization header requires 'Credential' parameter. Authorization header "
             "requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
             "parameter.")

# (description, how the request is signed, how it is spoiled, server clock offset,
#  verify options, __type, message or message-from-signed)
FAILURES = [
    ("body changed", sign, lambda s: new_body(s.view, b'{"repositoryNames": ["evil"]}'),
     0, {}, INVALID, MSG_MISMATCH),
    ("signed header changed", sign,
     lambda s: set_header(s.view, "X-Amz-Target", TARGET.replace("Describe", "Delete")),
     0, {}, INVALID, MSG_MISMATCH),
    ("signed header removed", sign, lambda s: drop_header(s.view, "X-Amz-Target"),
     0, {}, INVALID, MSG_MISMATCH),
    ("host port dropped by a proxy", sign, lambda s: set_header(s.view, "Host", "127.0.0.1"),
     0, {}, INVALID, MSG_MISMATCH),
    ("signature altered", sign,
     lambda s: edit_auth(s.view, lambda a: a[:-1] + ("0" if a[-1] != "0" else "1")),
     0, {}, INVALID, MSG_MISMATCH),
    ("signature in upper case", sign,
     lambda s: edit_auth(s.view, lambda a: a.split("Signature=")[0] + "Signature="
                         + a.split("Signature=")[1].upper()),
     0, {}, INVALID, MSG_MISMATCH),
    ("wrong secret", lambda: sign(secret="not-the-secret"), _unchanged,
     0, {}, INVALID, MSG_MISMATCH),
    ("payload hash header does not match the body",
     lambda: sign(headers={**ECR_HEADERS, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}),
     _unchanged, 0, {}, INVALID, MSG_MISMATCH),
    # AWS's sentence, then Berth's naming the region it serves (an AWS endpoint's host name
    # says its region; Berth's does not).
    ("wrong region in scope", lambda: sign(region="eu-west-1"), _unchanged,
     0, {}, INVALID, "Credential should be scoped to a valid region, not 'eu-west-1'. "
                     "This Berth endpoint serves region 'us-east-1'."),
    ("endpoint prefix api.ecr as service", lambda: sign(service="api.ecr"), _unchanged,
     0, {}, INVALID, "Credential should be scoped to correct service: 'ecr'. "),
    ("wrong region and service", lambda: sign(region="eu-west-1", service="ecs"),
     _unchanged, 0, {}, INVALID,
     "Credential should be scoped to a valid region, not 'eu-west-1'. "
     "Credential should be scoped to correct service: 'ecr'. "
     "This Berth endpoint serves region 'us-east-1'."),
    ("wrong region and scope date", lambda: sign(region="eu-west-1"),
     lambda s: edit_auth(s.view, lambda a: a.replace(f"/{s.at:%Y%m%d}/", "/20000101/")),
     0, {}, INVALID,
     lambda s: "Credential should be scoped to a valid region, not 'eu-west-1'. "
     + _scope_date(s) + " This Berth endpoint serves region 'us-east-1'."),
    ("scope terminator", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace("aws4_request", "aws5_request")),
     0, {}, INVALID,
     "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. "),
    ("6 minutes old", sign, _unchanged, +360, {}, INVALID, _expired),
    ("6 minutes in the future", sign, _unchanged, -360, {}, INVALID, _future),
    ("scope date differs from X-Amz-Date", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace(f"/{s.at:%Y%m%d}/", "/20000101/")),
     0, {}, INVALID, _scope_date),
    ("unknown access key", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace(AKID, "AKIAUNKNOWN000000000")),
     0, {}, UNRECOGNIZED, MSG_UNRECOGNIZED),
    ("session token without a validator", lambda: sign(token=TOKEN), _unchanged,
     0, {}, UNRECOGNIZED, MSG_UNRECOGNIZED),
    ("session token the validator refuses", lambda: sign(token=TOKEN), _unchanged,
     0, {"session_token_valid": lambda key, tok: False}, UNRECOGNIZED, MSG_UNRECOGNIZED),
    ("session token added unsigned", sign,
     lambda s: set_header(s.view, "X-Amz-Security-Token", TOKEN),
     0, {}, UNRECOGNIZED, MSG_UNRECOGNIZED),
    ("no Authorization at all", sign, lambda s: drop_header(s.view, "Authorization"),
     0, {}, MISSING, MSG_MISSING),
    ("Basic credentials on the API", sign,
     lambda s: set_header(s.view, "Authorization", "Basic QVdTOnBhc3N3b3Jk"),
     0, {}, MISSING, MSG_MISSING),
    ("algorithm only", sign, lambda s: set_header(s.view, "Authorization", "AWS4-HMAC-SHA256"),
     0, {}, INCOMPLETE, NO_PARAMS),
    ("no Credential", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace("Credential=", "Cred=")),
     0, {}, INCOMPLETE, "Authorization header requires 'Credential' parameter."),
    ("empty Signature", sign,
     lambda s: edit_auth(s.view, lambda a: a.split("Signature=")[0] + "Signature="),
     0, {}, INCOMPLETE, "Authorization header requires 'Signature' parameter."),
    ("no SignedHeaders", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace("SignedHeaders=", "Headers=")),
     0, {}, INCOMPLETE, "Authorization header requires 'SignedHeaders' parameter."),
    ("no date header", sign, lambda s: drop_header(s.view, "X-Amz-Date"), 0, {}, INCOMPLETE,
     "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."),
    ("missing equal-sign", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace("Credential=", "Credential ")),
     0, {}, INCOMPLETE,
     "'Credential' not a valid key=value pair (missing equal-sign) in Authorization header."),
    ("bad X-Amz-Date", sign, lambda s: set_header(s.view, "X-Amz-Date", "2024-01-01"),
     0, {}, INCOMPLETE,
     "Date must be in ISO-8601 'basic format'. Got '2024-01-01'. "
     "See http://en.wikipedia.org/wiki/ISO_8601"),
    ("unsupported algorithm", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1")),
     0, {}, INCOMPLETE, "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1' "
                        "(only AWS4-HMAC-SHA256 for now). "),
    ("credential with four parts", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace("/aws4_request", "")),
     0, {}, INCOMPLETE, lambda s: "Credential must have exactly 5 slash-delimited elements, "
     f"e.g. keyid/date/region/service/term, got '{AKID}/{s.at:%Y%m%d}/{REGION}/ecr'"),
    ("host not signed", sign,
     lambda s: edit_auth(s.view, lambda a: a.replace("host;", "")),
     0, {}, INVALID, MSG_HOST_UNSIGNED),
    ("header and query auth at once", sign, _both, 0, {}, INVALID, MSG_BOTH),
    # An ECR request names its operation in X-Amz-Target and its body's format in
    # Content-Type: a signature that leaves either out does not cover what the request does.
    # AWS's wording for Host, applied to each required header in turn.
    ("x-amz-target not signed", _sign_without("X-Amz-Target"), _unchanged,
     0, ECR_REQUIRED, INVALID, "'X-Amz-Target' must be a 'SignedHeader' in the AWS "
                               "Authorization."),
    ("content-type not signed", _sign_without("Content-Type"), _unchanged,
     0, ECR_REQUIRED, INVALID, "'Content-Type' must be a 'SignedHeader' in the AWS "
                               "Authorization."),
    ("neither required header signed", _sign_without("Content-Type", "X-Amz-Target"),
     _unchanged, 0, ECR_REQUIRED, INVALID,
     "'Content-Type' must be a 'SignedHeader' in the AWS Authorization."),
    ("required header unsigned and host unsigned: host first",
     _sign_without("X-Amz-Target"), lambda s: edit_auth(s.view, lambda a: a.replace("host;", "")),
     0, ECR_REQUIRED, INVALID, MSG_HOST_UNSIGNED),
    ("required header unsigned and wrong region: the header first",
     _sign_without("X-Amz-Target", region="eu-west-1"), _unchanged, 0, ECR_REQUIRED, INVALID,
     "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."),
    ("required header unsigned and a bad date: the date first", _sign_without("X-Amz-Target"),
     lambda s: set_header(s.view, "X-Amz-Date", "2024-01-01"), 0, ECR_REQUIRED, INCOMPLETE,
     "Date must be in ISO-8601 'basic format'. Got '2024-01-01'. "
     "See http://en.wikipedia.org/wiki/ISO_8601"),
    ("presigned without the required headers", lambda: _presigned(presign=300), _unchanged,
     0, ECR_REQUIRED, INVALID, "'Content-Type' must be a 'SignedHeader' in the AWS "
                               "Authorization."),
    ("presigned query param tampered", lambda: _presigned(url=URL + "v2/?n=1", presign=300),
     lambda s: _query(s, lambda q: q.replace("n=1", "n=2")), 0, {}, INVALID, MSG_MISMATCH),
    ("presigned without signature", lambda: _presigned(presign=300),
     lambda s: _query(s, _without_query_param("X-Amz-Signature")), 0, {}, INCOMPLETE,
     "AWS query-string parameters must include 'X-Amz-Signature'. "
     "Re-examine the query-string parameters."),
    ("presigned past X-Amz-Expires", lambda: _presigned(presign=90), _unchanged,
     +91, {}, INVALID, _presign_expired),
    ("presigned X-Amz-Expires over a week", lambda: _presigned(presign=604801),
     _unchanged, 0, {}, INCOMPLETE,
     "X-Amz-Expires must be less than a week (in seconds) that is; 604800"),
    ("presigned with a session token", lambda: _presigned(presign=300, token=TOKEN),
     _unchanged, 0, {}, UNRECOGNIZED, MSG_UNRECOGNIZED),
]


@pytest.mark.parametrize("make,spoil,offset,options,type_name,message",
                         [case[1:] for case in FAILURES], ids=[case[0] for case in FAILURES])
def test_rejects_with_aws_error(make, spoil, offset, options, type_name, message):
    signed = make()
    view = spoil(signed)
    with pytest.raises(SigV4Error) as caught:
        check(view, signed.at + timedelta(seconds=offset), **options)
    expected = message(signed) if callable(message) else message
    assert (caught.value.type_name, caught.value.message) == (type_name, expected)
    # Nothing secret or replayable is echoed back.
    for secret in (SECRET, TOKEN, header(signed.view, "authorization"), signature_of(signed)):
        if secret is None:
            continue
        assert secret not in caught.value.message
        assert secret not in repr(caught.value)


# Errors that only the signature over the body (or the token after it) can reveal.
_BODY_STAGE = {MSG_MISMATCH, MSG_UNRECOGNIZED}


@pytest.mark.parametrize("make,spoil,offset,options,type_name,message",
                         [case[1:] for case in FAILURES], ids=[case[0] for case in FAILURES])
def test_header_stage_needs_no_body(make, spoil, offset, options, type_name, message):
    """check_header gives every header fault verify gives, without the body's hash; what is
    left (signature, unknown key excepted, token) fails in verify_body."""
    signed = make()
    view = dataclasses.replace(spoil(signed), body_sha256="never read by check_header")
    now = signed.at + timedelta(seconds=offset)
    header_options = {k: v for k, v in options.items() if k != "session_token_valid"}
    expected = message(signed) if callable(message) else message
    unknown_key = "AKIAUNKNOWN" in (header(view, "authorization") or "")
    if expected in _BODY_STAGE and not unknown_key:
        checked = sigv4.check_header(view, lookup_secret=KEYS.get, region=REGION,
                                     service="ecr", now=now, **header_options)
        assert SECRET not in repr(checked)
        with pytest.raises(SigV4Error) as caught:
            sigv4.verify_body(spoil(signed), checked,
                              session_token_valid=options.get("session_token_valid"))
    else:
        with pytest.raises(SigV4Error) as caught:
            sigv4.check_header(view, lookup_secret=KEYS.get, region=REGION, service="ecr",
                               now=now, **header_options)
    assert (caught.value.type_name, caught.value.message) == (type_name, expected)


def test_header_stage_then_body_stage_accepts_what_verify_accepts():
    signed = sign()
    checked = sigv4.check_header(dataclasses.replace(signed.view, body_sha256=""),
                                 lookup_secret=KEYS.get, region=REGION, service="ecr",
                                 now=signed.at, **ECR_REQUIRED)
    assert checked.signed_headers == ("content-type", "host", "x-amz-date", "x-amz-target")
    verified = sigv4.verify_body(signed.view, checked)
    assert verified == check(signed.view, signed.at, **ECR_REQUIRED)


def test_session_token_validator_sees_key_and_token():
    seen = []
    signed = sign(token=TOKEN)
    check(signed.view, signed.at, session_token_valid=lambda *args: seen.append(args) or True)
    assert seen == [(AKID, TOKEN)]


def test_signing_keys_are_cached_per_secret_day_region_service():
    signed = sign()
    check(signed.view, signed.at)
    before = sigv4._signing_key.cache_info()
    check(signed.view, signed.at)
    after = sigv4._signing_key.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
    assert after.maxsize is not None  # bounded


def test_rotated_secret_does_not_reuse_a_cached_key():
    signed = sign()
    check(signed.view, signed.at)
    with pytest.raises(SigV4Error) as caught:
        verify(signed.view, lookup_secret={AKID: "rotated"}.get, region=REGION,
               service="ecr", now=signed.at)
    assert caught.value.type_name == INVALID


def test_naive_now_is_utc():
    signed = sign()
    assert check(signed.view, signed.at.replace(tzinfo=None)).access_key_id == AKID


# --- properties -------------------------------------------------------------------------

@cache
def _fixed() -> Signed:
    return sign()


@given(index=st.integers(0, len(BODY) - 1), byte=st.integers(0, 255))
def test_any_single_byte_change_of_the_body_fails(index, byte):
    if BODY[index] == byte:
        byte ^= 0x01
    changed = BODY[:index] + bytes([byte]) + BODY[index + 1:]
    signed = _fixed()
    with pytest.raises(SigV4Error) as caught:
        check(new_body(signed.view, changed), signed.at)
    assert (caught.value.type_name, caught.value.message) == (INVALID, MSG_MISMATCH)


@given(index=st.integers(0, 63), char=st.characters(min_codepoint=33, max_codepoint=126))
def test_any_single_character_change_of_the_signature_fails(index, char):
    signed = _fixed()
    auth = header(signed.view, "authorization")
    start = auth.index("Signature=") + len("Signature=")
    if auth[start + index] == char:
        char = "g"  # never a hex digit
    spoiled = auth[:start + index] + char + auth[start + index + 1:]
    with pytest.raises(SigV4Error):
        check(set_header(signed.view, "Authorization", spoiled), signed.at)


@given(authorization=st.one_of(
           st.text(max_size=200),
           st.builds(lambda creds, headers, sig: f"AWS4-HMAC-SHA256 Credential={creds}, "
                                                f"SignedHeaders={headers}, Signature={sig}",
                     st.sampled_from([f"{AKID}/20240101/{REGION}/ecr/aws4_request",
                                      "x/20240101/r/s/t", "", "a//b"]),
                     st.sampled_from(["host", "host;x-amz-date", "host;absent", ";", "HOST"]),
                     st.text(max_size=70))),
       raw_path=st.text(max_size=40), raw_query=st.text(max_size=40))
def test_arbitrary_input_only_ever_raises_sigv4_error(authorization, raw_path, raw_query):
    view = HttpRequestView(method="POST", raw_path=raw_path, raw_query=raw_query,
                           headers=(("Authorization", authorization), ("Host", "h"),
                                    ("X-Amz-Date", "20240101T000000Z")),
                           body_sha256=hashlib.sha256(b"").hexdigest())
    with pytest.raises(SigV4Error):
        check(view, datetime(2024, 1, 1, tzinfo=timezone.utc))
