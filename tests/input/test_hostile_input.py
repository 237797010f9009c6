"""Hostile and clumsy input across both APIs and the CLI: a 4xx in the API's own words, never
a 5xx, and nothing stored changes (issue 8, 4; DESIGN invariant 4).

One table per surface. Each row is a request a hostile client might send: JSON nested 100,000
deep, integers of 5,000 digits, lone UTF-16 surrogates, manifests that are not UTF-8, names,
tags, digests and ARNs ending in a newline. Around each row, ``snapshot()`` (blob files, upload
sessions, policy files, every database table) must not change.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.input.conftest import ACCOUNT, MANIFEST_TYPE, REGION, b64, image_manifest

DEEP = b"[" * 100_000 + b"]" * 100_000
# 10,000 deep fits in every operation's body limit (64 KiB at least), so it reaches the parser;
# 100,000 deep does not, and is refused unread by the per-operation limit.
DEEP_FITTING = b"[" * 10_000 + b"]" * 10_000
HUGE_INT = b"9" * 5000
ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/lib/existing"
HEX = "a" * 64


@pytest.fixture(scope="module")
def world(berth):
    """lib/existing holding an image tagged v1; returns its manifest text."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = b"layer bytes"
    manifest = image_manifest(berth.push_blob("lib/existing", config), len(config),
                              [(berth.push_blob("lib/existing", layer), len(layer))])
    berth.push_manifest("lib/existing", "v1", manifest)
    return manifest.decode()


def with_member(text: str, raw: str) -> str:
    """``text`` (a JSON object) with one more member, ``"x": <raw JSON text>``."""
    return '{"x": ' + raw + ", " + text[1:]


def policy(resource: str = ARN, *, extra: str = "") -> str:
    return ('{"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow", '
            '"Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "ecr:*", '
            f'"Resource": {json.dumps(resource)}{extra}}}]}}')


def manifest_body(world: str, manifest: str, **more) -> dict:
    return {"repositoryName": "lib/existing", "imageManifest": manifest, **more}


# description, operation, body (bytes sent as is, a dict json.dumps'd, or a function of the
# pushed manifest text returning either), expected status, __type, optional check of the body
ECR_CASES = [
    # The request body itself.
    ("body nested 100,000 deep", "CreateRepository", DEEP, 413, "ValidationException"),
    ("member nested 100,000 deep", "CreateRepository",
     b'{"repositoryName": "lib/deep", "tags": ' + DEEP + b"}", 413, "ValidationException"),
    ("body nested 10,000 deep", "CreateRepository", DEEP_FITTING, 400,
     "SerializationException"),
    ("member nested 10,000 deep", "CreateRepository",
     b'{"repositoryName": "lib/deep", "tags": ' + DEEP_FITTING + b"}", 400,
     "SerializationException"),
    ("5,000-digit integer", "DescribeRepositories", b'{"maxResults": ' + HUGE_INT + b"}", 400,
     "SerializationException"),
    ("lone surrogate in a name", "CreateRepository", {"repositoryName": "lib/\ud800"}, 400,
     "SerializationException"),
    ("lone surrogate in a tag key", "CreateRepository",
     {"repositoryName": "lib/surrogate", "tags": [{"Key": "\udc00", "Value": "v"}]}, 400,
     "SerializationException"),
    ("UTF-16 body", "CreateRepository", '{"repositoryName": "lib/utf16"}'.encode("utf-16"), 400,
     "SerializationException"),
    ("UTF-8 byte order mark", "CreateRepository", b'\xef\xbb\xbf{"repositoryName": "lib/bom"}',
     400, "SerializationException"),
    ("invalid UTF-8", "CreateRepository", b'{"repositoryName": "lib/\xff"}', 400,
     "SerializationException"),
    ("NaN", "DescribeRepositories", b'{"maxResults": NaN}', 400, "SerializationException"),
    # Names and identifiers ending in a newline.
    ("repository name ending in newline", "CreateRepository", {"repositoryName": "lib/app\n"},
     400, "InvalidParameterException"),
    ("registryId ending in newline", "DescribeRepositories", {"registryId": ACCOUNT + "\n"},
     400, "InvalidParameterException"),
    ("described name ending in newline", "DescribeRepositories",
     {"repositoryNames": ["lib/existing\n"]}, 400, "InvalidParameterException"),
    ("resourceArn ending in newline", "TagResource",
     {"resourceArn": ARN + "\n", "tags": [{"Key": "k", "Value": "v"}]}, 400,
     "InvalidParameterException"),
    ("resourceArn naming an invalid repository", "TagResource",
     {"resourceArn": ARN + "/", "tags": [{"Key": "k", "Value": "v"}]}, 400,
     "InvalidParameterException"),
    ("resourceArn with non-ASCII digits", "ListTagsForResource",
     {"resourceArn": ARN.replace(ACCOUNT, "\uff10" * 12)}, 400, "InvalidParameterException"),
    ("imageTag ending in newline", "PutImage",
     lambda m: manifest_body(m, m, imageTag="v2\n"), 400, "InvalidParameterException"),
    ("imageDigest ending in newline", "PutImage",
     lambda m: manifest_body(m, m, imageDigest=f"sha256:{HEX}\n"), 400,
     "InvalidParameterException"),
    ("BatchGetImage by tag ending in newline", "BatchGetImage",
     {"repositoryName": "lib/existing", "imageIds": [{"imageTag": "v1\n"}]}, 200, None,
     lambda body: [f["failureCode"] for f in body["failures"]] == ["InvalidImageTag"]
     and body["images"] == []),
    ("BatchGetImage by digest ending in newline", "BatchGetImage",
     {"repositoryName": "lib/existing", "imageIds": [{"imageDigest": f"sha256:{HEX}\n"}]}, 200,
     None, lambda body: [f["failureCode"] for f in body["failures"]] == ["InvalidImageDigest"]),
    ("BatchDeleteImage by tag ending in newline", "BatchDeleteImage",
     {"repositoryName": "lib/existing", "imageIds": [{"imageTag": "v1\n"}]}, 200, None,
     lambda body: [f["failureCode"] for f in body["failures"]] == ["InvalidImageTag"]
     and body["imageIds"] == []),
    ("DescribeImages by tag ending in newline", "DescribeImages",
     {"repositoryName": "lib/existing", "imageIds": [{"imageTag": "v1\n"}]}, 400,
     "InvalidParameterException"),
    ("DescribeImages by digest ending in newline", "DescribeImages",
     {"repositoryName": "lib/existing", "imageIds": [{"imageDigest": f"sha256:{HEX}\n"}]}, 400,
     "InvalidParameterException"),
    ("nextToken nested 100,000 deep", "ListImages",
     {"repositoryName": "lib/existing", "nextToken": b64(DEEP)}, 413,
     "ValidationException"),
    ("nextToken nested 10,000 deep", "ListImages",
     {"repositoryName": "lib/existing", "nextToken": b64(DEEP_FITTING)}, 400,
     "InvalidParameterException"),
    ("nextToken with a 5,000-digit integer", "DescribeRepositories",
     {"nextToken": b64(HUGE_INT)}, 400, "InvalidParameterException"),
    # PutImage's manifest, a JSON document inside the JSON body.
    ("manifest nested 100,000 deep", "PutImage",
     lambda m: manifest_body(m, with_member(m, DEEP.decode())), 400,
     "InvalidParameterException"),
    ("manifest with a 5,000-digit integer", "PutImage",
     lambda m: manifest_body(m, with_member(m, HUGE_INT.decode())), 400,
     "InvalidParameterException"),
    ("manifest with a lone surrogate escape", "PutImage",
     lambda m: manifest_body(m, with_member(m, '"\\ud800"')), 400,
     "InvalidParameterException"),
    ("manifest with a byte order mark", "PutImage",
     lambda m: manifest_body(m, "\ufeff" + m), 400, "InvalidParameterException"),
    ("manifest that is not JSON", "PutImage", lambda m: manifest_body(m, m[:-1]), 400,
     "InvalidParameterException"),
    # Policy texts.
    ("repository policy nested 5,000 deep (its size limit is 10,240)", "SetRepositoryPolicy",
     {"repositoryName": "lib/existing", "policyText": "[" * 5000 + "]" * 5000}, 400,
     "InvalidParameterException"),
    ("repository policy with a 5,000-digit integer", "SetRepositoryPolicy",
     {"repositoryName": "lib/existing",
      "policyText": policy(extra=', "Condition": {"NumericLessThan": {"aws:EpochTime": '
                                 + "9" * 5000 + "}}")}, 400, "InvalidParameterException"),
    ("repository policy with a lone surrogate", "SetRepositoryPolicy",
     {"repositoryName": "lib/existing", "policyText": policy().replace('"A"', '"\\udc00"')},
     400, "InvalidParameterException"),
    ("repository policy Resource ending in newline", "SetRepositoryPolicy",
     {"repositoryName": "lib/existing", "policyText": policy(ARN + "\n")}, 400,
     "InvalidParameterException"),
    ("registry policy nested 5,000 deep", "PutRegistryPolicy",
     {"policyText": "[" * 5000 + "]" * 5000}, 400, "InvalidParameterException"),
    ("registry policy with a lone surrogate", "PutRegistryPolicy",
     {"policyText": policy("*").replace('"A"', '"\\ud800"')}, 400,
     "InvalidParameterException"),
    ("registry policy Resource ending in newline", "PutRegistryPolicy",
     {"policyText": policy(ARN + "\n")}, 400, "InvalidParameterException"),
    ("registry policy that is UTF-16 text", "PutRegistryPolicy",
     {"policyText": policy("*").encode("utf-16").decode("latin-1")}, 400,
     "InvalidParameterException"),
]


@pytest.mark.parametrize("case", ECR_CASES, ids=[c[0] for c in ECR_CASES])
def test_ecr_refuses_hostile_input_and_changes_nothing(berth, world, case):
    description, operation, body, status, error_type, *check = case
    if callable(body):
        body = body(world)
    before = berth.snapshot()
    resp = berth.ecr(operation, body)
    assert resp.status_code == status, resp.text
    payload = resp.json()
    if error_type is not None:
        assert payload["__type"] == error_type, payload
        assert payload["message"]
    for predicate in check:
        assert predicate(payload), payload
    assert berth.snapshot() == before


def _member(raw: bytes):
    return lambda manifest: b'{"x": ' + raw + b", " + manifest[1:]


# description, method, path, body (bytes, or a function of the valid manifest), status, code
V2_CASES = [
    ("manifest nested 100,000 deep", "PUT", "/v2/lib/existing/manifests/v2", _member(DEEP), 400,
     "MANIFEST_INVALID"),
    ("manifest with a 5,000-digit integer", "PUT", "/v2/lib/existing/manifests/v2",
     _member(HUGE_INT), 400, "MANIFEST_INVALID"),
    ("manifest with a lone surrogate", "PUT", "/v2/lib/existing/manifests/v2",
     _member(b'"\\udfff"'), 400, "MANIFEST_INVALID"),
    ("UTF-16 manifest", "PUT", "/v2/lib/existing/manifests/v2",
     lambda m: m.decode().encode("utf-16"), 400, "MANIFEST_INVALID"),
    ("manifest with a byte order mark", "PUT", "/v2/lib/existing/manifests/v2",
     lambda m: b"\xef\xbb\xbf" + m, 400, "MANIFEST_INVALID"),
    ("hostile manifest to a new repository", "PUT", "/v2/lib/fresh/manifests/v1",
     _member(DEEP), 400, "MANIFEST_INVALID"),
    ("tag ending in newline", "PUT", "/v2/lib/existing/manifests/v2%0A", lambda m: m, 400,
     "TAG_INVALID"),
    ("name ending in newline", "PUT", "/v2/lib/existing%0A/manifests/v2", lambda m: m, 400,
     "NAME_INVALID"),
    ("upload to a name ending in newline", "POST", "/v2/lib/new%0A/blobs/uploads/", None, 400,
     "NAME_INVALID"),
    ("blob digest ending in newline", "GET", f"/v2/lib/existing/blobs/sha256:{HEX}%0A", None,
     400, "DIGEST_INVALID"),
    ("pull by tag ending in newline", "GET", "/v2/lib/existing/manifests/v1%0A", None, 404,
     "MANIFEST_UNKNOWN"),
    ("pull by a reference that cannot exist", "GET",
     "/v2/lib/existing/manifests/sha256:baddigeststring", None, 404, "MANIFEST_UNKNOWN"),
    ("delete by tag ending in newline", "DELETE", "/v2/lib/existing/manifests/v1%0A", None, 404,
     "MANIFEST_UNKNOWN"),
]


@pytest.mark.parametrize("case", V2_CASES, ids=[c[0] for c in V2_CASES])
def test_v2_refuses_hostile_input_and_changes_nothing(berth, world, case):
    description, method, path, body, status, code = case
    if callable(body):
        body = body(world.encode())
    before = berth.snapshot()
    resp = berth.v2(method, path, data=body, headers={"Content-Type": MANIFEST_TYPE})
    assert resp.status_code == status, resp.text
    assert resp.json()["errors"][0]["code"] == code
    assert berth.snapshot() == before


def test_head_of_a_reference_that_cannot_exist_is_404(berth, world):
    for reference in ("v1%0A", "sha256:baddigeststring", "-bad", "md5:" + "a" * 32):
        resp = berth.v2("HEAD", f"/v2/lib/existing/manifests/{reference}")
        assert resp.status_code == 404, reference
    assert berth.v2("HEAD", "/v2/lib/existing/manifests/v1").status_code == 200


HOSTILE_POLICIES = [  # description, file content, a word of the error printed
    ("nested 100,000 deep", DEEP, "nested deeper than 32"),
    ("5,000-digit integer", policy("*", extra=', "Condition": {"NumericLessThan": '
                                              '{"aws:EpochTime": ' + "9" * 5000 + "}}").encode(),
     "longer than 4300 digits"),
    ("lone surrogate", policy("*").replace('"A"', '"\\ud800"').encode(), "surrogate"),
    ("UTF-16", policy("*").encode("utf-16"), "UTF-8"),
    ("byte order mark", b"\xef\xbb\xbf" + policy("*").encode(), "byte order mark"),
    ("binary garbage", bytes(range(256)), "UTF-8"),
    ("Resource ending in newline", policy(ARN + "\n").encode(), "ARN format"),
]


@pytest.mark.parametrize("description,content,problem", HOSTILE_POLICIES,
                         ids=[c[0] for c in HOSTILE_POLICIES])
def test_berth_iam_put_user_policy_refuses_hostile_documents(berth, tmp_path, description,
                                                            content, problem):
    created = berth.berth("iam", "create-user", "--user-name", "hostile-iam",
                          "--data", str(berth.server.data_dir))
    assert created.returncode in (0, 1), created.stderr  # 1: exists from an earlier row
    path = tmp_path / "policy.json"
    path.write_bytes(content.replace(b"arn:aws:iam::000000000000:root", b"*"))
    before = berth.snapshot()
    result = berth.berth("iam", "put-user-policy", "--user-name", "hostile-iam",
                         "--policy-name", "p", "--policy-document", f"file://{path}",
                         "--data", str(berth.server.data_dir))
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr and problem in stderr, stderr
    assert berth.snapshot() == before


def test_berth_iam_put_user_policy_refuses_invalid_utf8_on_the_command_line(berth):
    berth.berth("iam", "create-user", "--user-name", "hostile-argv",
                "--data", str(berth.server.data_dir))
    before = berth.snapshot()
    # argv bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
    result = berth.berth("iam", "put-user-policy", "--user-name", "hostile-argv",
                         "--policy-name", "p", "--policy-document",
                         policy("*").encode().replace(b'"A"', b'"\xff"'),
                         "--data", str(berth.server.data_dir))
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1 and "Traceback" not in stderr, stderr
    assert "MalformedPolicyDocument" in stderr
    assert berth.snapshot() == before


@pytest.mark.parametrize("description,content,problem", HOSTILE_POLICIES,
                         ids=[c[0] for c in HOSTILE_POLICIES])
def test_berth_policy_validate_reports_hostile_documents(berth, tmp_path, description, content,
                                                         problem):
    path = tmp_path / "policy.json"
    path.write_bytes(content)
    result = berth.berth("policy", "validate", str(path))
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 1, output
    assert "Traceback" not in output and output.startswith(f"{path}: "), output
    assert problem in output or "cannot read" in output, output


def test_boto3_gets_the_same_answers(berth, world):
    """The real client, for the rows it can express (it serialises Python values itself)."""
    ecr = boto3.client("ecr", endpoint_url=berth.url, region_name=REGION,
                       aws_access_key_id=berth.creds.key_id,
                       aws_secret_access_key=berth.creds.secret,
                       config=Config(retries={"max_attempts": 1}))
    calls = [
        lambda: ecr.create_repository(repositoryName="lib/app\n"),
        lambda: ecr.create_repository(repositoryName="lib/app",
                                      tags=[{"Key": "\ud800", "Value": "v"}]),
        lambda: ecr.put_image(repositoryName="lib/existing", imageManifest=world,
                              imageTag="v2\n"),
        lambda: ecr.put_image(repositoryName="lib/existing",
                              imageManifest=with_member(world, HUGE_INT.decode())),
        lambda: ecr.tag_resource(resourceArn=ARN + "\n", tags=[{"Key": "k", "Value": "v"}]),
        lambda: ecr.set_repository_policy(repositoryName="lib/existing",
                                          policyText=policy(ARN + "\n")),
        lambda: ecr.put_registry_policy(policyText=policy("*").replace('"A"', '"\\ud800"')),
        lambda: ecr.describe_images(repositoryName="lib/existing",
                                    imageIds=[{"imageTag": "v1\n"}]),
    ]
    before = berth.snapshot()
    for call in calls:
        with pytest.raises(ClientError) as raised:
            call()
        status = raised.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 400, raised.value.response
        assert raised.value.response["Error"]["Code"] in (
            "InvalidParameterException", "SerializationException")
    assert berth.snapshot() == before
