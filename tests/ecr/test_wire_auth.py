"""Authentication failures on the wire: each gets AWS's error (or OCI's) and changes nothing."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone

import boto3
import botocore.auth
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from registry.auth.keys import MasterKeys, load_or_create_master_key, token_signer

TARGET = "AmazonEC2ContainerRegistry_V20150921."


def signed(auth_server, operation: str, body: dict, *, creds=None, region="us-east-1",
           service="ecr", when: datetime | None = None, secret: str | None = None):
    creds = creds or auth_server.admin
    request = AWSRequest(method="POST", url=auth_server.url + "/", data=json.dumps(body),
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": TARGET + operation})
    signer = SigV4Auth(Credentials(creds.key_id, secret or creds.secret), service, region)
    if when is None:
        signer.add_auth(request)
        return request
    # A client whose clock is off: botocore reads the time through this one function.
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: when.replace(tzinfo=None)
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    return request


def send(request: AWSRequest, **overrides) -> requests.Response:
    headers = dict(request.headers.items())
    headers.update(overrides.pop("headers", {}))
    return requests.post(request.url, data=overrides.pop("data", request.body),
                         headers=headers, timeout=10)


def create_body(name: str) -> dict:
    return {"repositoryName": name}


def tamper_signature(request: AWSRequest) -> dict:
    header = request.headers["Authorization"]
    last = header[-1]
    return {"Authorization": header[:-1] + ("0" if last != "0" else "1")}


CASES = [
    # description, how to build the request, expected __type, message fragment
    ("tampered signature", lambda s, b: send(s(b), headers=tamper_signature(s(b))),
     "InvalidSignatureException", "The request signature we calculated does not match"),
    ("tampered body", lambda s, b: send(s(b), data=json.dumps({**b, "x": 1})),
     "InvalidSignatureException", "The request signature we calculated does not match"),
    ("wrong region in scope", lambda s, b: send(s(b, region="eu-west-1")),
     "InvalidSignatureException", "Credential should be scoped to a valid region"),
    ("wrong service in scope", lambda s, b: send(s(b, service="api.ecr")),
     "InvalidSignatureException", "Credential should be scoped to correct service"),
    ("expired date", lambda s, b: send(s(b, when=datetime.now(timezone.utc)
                                         - timedelta(minutes=6))),
     "InvalidSignatureException", "Signature expired"),
    ("future date", lambda s, b: send(s(b, when=datetime.now(timezone.utc)
                                        + timedelta(minutes=6))),
     "InvalidSignatureException", "Signature not yet current"),
    ("wrong secret", lambda s, b: send(s(b, secret="x" * 40)),
     "InvalidSignatureException", "The request signature we calculated does not match"),
    ("missing auth", lambda s, b: send(s(b), headers={"Authorization": None}),
     "MissingAuthenticationTokenException", "Missing Authentication Token"),
    ("malformed header", lambda s, b: send(s(b), headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential/nothing"}),
     "IncompleteSignatureException", "Authorization header"),
    ("session token not issued by Berth", lambda s, b: send(s(b), headers={
        "X-Amz-Security-Token": "FwoGZXIvYXdzEJr"}),
     "UnrecognizedClientException", "The security token included in the request is invalid."),
]


@pytest.mark.parametrize("description,build,code,fragment", CASES, ids=[c[0] for c in CASES])
def test_signature_failures(auth_server, name, description, build, code, fragment):
    def make(body, **kwargs):
        return signed(auth_server, "CreateRepository", body, **kwargs)

    response = build(make, create_body(name))
    assert response.status_code in (400, 403)
    payload = response.json()
    assert payload["__type"] == code
    assert fragment in payload["message"]
    assert response.headers["x-amzn-RequestId"]
    assert auth_server.admin.secret not in response.text
    ecr = auth_server.client()
    assert name not in [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]


def test_unknown_access_key(auth_server, name):
    class Nobody:
        key_id, secret = "AKIAUNKNOWNUNKNOWN00", "s" * 40

    response = send(signed(auth_server, "CreateRepository", create_body(name), creds=Nobody))
    assert response.json() == {"__type": "UnrecognizedClientException",
                               "message": "The security token included in the request is "
                                          "invalid."}


def test_unknown_operation(auth_server):
    response = send(signed(auth_server, "LaunchRockets", {}))
    assert response.status_code == 400
    assert response.json() == {
        "__type": "UnknownOperationException",
        "message": "Berth does not implement the ECR operation 'LaunchRockets'"}
    assert response.headers["x-amzn-RequestId"]


def test_an_ecr_operation_berth_lacks_says_so_through_boto3(auth_server):
    with pytest.raises(ClientError) as caught:
        auth_server.client().create_pull_through_cache_rule(
            ecrRepositoryPrefix="hub", upstreamRegistryUrl="registry-1.docker.io")
    assert caught.value.response["Error"] == {
        "Code": "UnknownOperationException",
        "Message": "Berth does not implement the ECR operation 'CreatePullThroughCacheRule'"}


@pytest.mark.parametrize("target,fragment", [
    ("AmazonEC2ContainerServiceV20141113.ListClusters", "Unknown operation "
     "'AmazonEC2ContainerServiceV20141113.ListClusters'. Berth serves the Amazon ECR API only"),
    (None, "Missing X-Amz-Target header. Berth serves the Amazon ECR API only"),
], ids=["another service", "no target"])
def test_unknown_target_names_the_api_served(auth_server, target, fragment):
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    response = requests.post(auth_server.url + "/", data=b"{}", headers=headers, timeout=10)
    assert response.status_code == 400
    assert response.json()["__type"] == "UnknownOperationException"
    assert fragment in response.json()["message"]
    assert f"(X-Amz-Target: {TARGET}<Operation>)" in response.json()["message"]


@pytest.mark.parametrize("suffix", ["/v2/", "/v2", "/v2/some/repo", "/api"])
def test_ecr_client_pointed_at_a_path_is_told_where_the_api_is(auth_server, suffix):
    """``--endpoint-url http://host/v2/`` is the usual slip: the answer says what to use."""
    client = auth_server.client(endpoint=auth_server.url + suffix)
    with pytest.raises(ClientError) as caught:
        client.describe_repositories()
    error = caught.value.response["Error"]
    assert error["Code"] == "UnknownOperationException"
    assert "the ECR API is served at POST / on this host" in error["Message"]
    assert f"--endpoint-url {auth_server.url} (no path)" in error["Message"]
    assert f"AWS_ENDPOINT_URL_ECR={auth_server.url}" in error["Message"]
    if suffix.startswith("/v2"):
        assert "this is the container registry API (/v2/)" in error["Message"]
    assert caught.value.response["ResponseMetadata"]["RequestId"]


def test_wrong_region_names_the_region_served(auth_server):
    client = boto3.client("ecr", endpoint_url=auth_server.url, region_name="eu-west-1",
                          aws_access_key_id=auth_server.admin.key_id,
                          aws_secret_access_key=auth_server.admin.secret,
                          config=BotoConfig(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as caught:
        client.describe_repositories()
    assert caught.value.response["Error"] == {
        "Code": "InvalidSignatureException",
        "Message": "Credential should be scoped to a valid region, not 'eu-west-1'. "
                   "This Berth endpoint serves region 'us-east-1'."}


def _signed_without(auth_server, operation: str, body: dict, *unsigned: str) -> AWSRequest:
    """A boto3-like request whose signature leaves ``unsigned`` headers out (a hand-rolled
    signer that signs only host and x-amz-date does this)."""
    wire = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + operation}
    request = AWSRequest(method="POST", url=auth_server.url + "/", data=json.dumps(body),
                         headers={k: v for k, v in wire.items() if k not in unsigned})
    SigV4Auth(Credentials(auth_server.admin.key_id, auth_server.admin.secret), "ecr",
              "us-east-1").add_auth(request)
    for name in unsigned:
        request.headers[name] = wire[name]
    return request


@pytest.mark.parametrize("unsigned,header", [
    (("X-Amz-Target",), "X-Amz-Target"), (("Content-Type",), "Content-Type"),
    (("Content-Type", "X-Amz-Target"), "Content-Type")], ids=["target", "content-type", "both"])
def test_requests_must_sign_target_and_content_type(auth_server, name, unsigned, header):
    request = _signed_without(auth_server, "CreateRepository", create_body(name), *unsigned)
    assert header.lower() not in request.headers["Authorization"].split("SignedHeaders=")[1]
    response = send(request)
    assert response.status_code == 400
    assert response.json() == {
        "__type": "InvalidSignatureException",
        "message": f"'{header}' must be a 'SignedHeader' in the AWS Authorization."}
    names = [r["repositoryName"] for r in auth_server.client().describe_repositories()[
        "repositories"]]
    assert name not in names


def test_fully_signed_hand_made_request_still_works(auth_server, name):
    response = send(signed(auth_server, "CreateRepository", create_body(name)))
    assert response.status_code == 200, response.text
    assert response.json()["repository"]["repositoryName"] == name


def _registry_token(auth_server, *, now: float) -> str:
    """A token minted with the server's own key, as if issued at ``now``."""
    signer = token_signer(MasterKeys(load_or_create_master_key(auth_server.server.data_dir)))
    password, _ = signer.issue(
        principal_arn="arn:aws:iam::000000000000:user/admin", account="000000000000",
        user_id="AIDAEXPIREDTOKENTEST1", access_key_id=auth_server.admin.key_id, now=now)
    return password


def _basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()}


def test_registry_token_lifecycle(auth_server):
    data = auth_server.client().get_authorization_token()["authorizationData"][0]
    assert data["proxyEndpoint"] == auth_server.url
    lifetime = data["expiresAt"].timestamp() - time.time()
    assert 12 * 3600 - 60 < lifetime <= 12 * 3600
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS"
    ok = requests.get(auth_server.url + "/v2/", headers=_basic(password), timeout=10)
    assert ok.status_code == 200
    expired = _registry_token(auth_server, now=time.time() - 13 * 3600)
    response = requests.get(auth_server.url + "/v2/", headers=_basic(expired), timeout=10)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert "expired" in response.json()["errors"][0]["message"]
    forged = password[:-2] + ("AA" if not password.endswith("AA") else "BB")
    response = requests.get(auth_server.url + "/v2/", headers=_basic(forged), timeout=10)
    assert response.status_code == 401
    for header in ({"Authorization": "Basic !!!"}, {"Authorization": "Bearer abc"},
                   _basic("not-a-token"), {"Authorization": "Basic " + base64.b64encode(
                       f"admin:{password}".encode()).decode()}):
        response = requests.get(auth_server.url + "/v2/", headers=header, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="')
    response = requests.get(auth_server.url + "/v2/", timeout=10)
    assert response.status_code == 401
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
