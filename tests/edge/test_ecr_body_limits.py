"""Each ECR operation reads no more body than it can legitimately need.

The limits come from the ECR model (registry/ecr/body_limits.py); a signed request over its
operation's limit is refused (``ValidationException``, HTTP 413) before its body is read when
Content-Length says so, and as soon as the limit is passed when it is sent chunked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
import requests

from registry.ecr.body_limits import BASE, LIMITS, body_limit
from registry.ecr.dispatch import OPERATIONS
from tests.edge.rawhttp import connect, head, signed_headers, wait_closed

MiB = 1024 * 1024


def test_every_operation_has_a_limit_and_only_uploads_get_megabytes():
    assert set(LIMITS) <= set(OPERATIONS)
    for operation in OPERATIONS:
        limit = body_limit(operation)
        assert BASE <= limit
        if operation not in ("UploadLayerPart", "PutImage"):
            assert limit <= 512 * 1024, operation
    # A 20 MiB part, base64-encoded in JSON, fits; PutImage fits a 4 MiB manifest escaped.
    assert body_limit("UploadLayerPart") > len(json.dumps(
        {"layerPartBlob": "A" * (4 * (20 * MiB // 3 + 1))}))
    assert body_limit("PutImage") >= 2 * 4 * MiB


@pytest.mark.parametrize("operation,document", [
    ("SetRepositoryPolicy", "policyText"), ("PutRegistryPolicy", "policyText")])
def test_a_maximal_policy_in_non_ascii_fits(operation, document):
    """botocore sends non-ASCII as \\uXXXX: 10,240 such characters must still fit."""
    body = json.dumps({"repositoryName": "a" * 256, document: "é" * 10_240}).encode()
    assert len(body) <= body_limit(operation)


def test_oversized_create_repository_is_refused_before_it_is_read(tight):
    body = json.dumps({"repositoryName": "edge/too-big", "x": "a" * (2 * MiB)}).encode()
    headers = signed_headers(tight.url, "CreateRepository", body, tight.admin.key_id,
                             tight.admin.secret)
    sock = connect(tight.server.port)
    sock.sendall(head("POST", "/", headers) + body[:4096])  # and not a byte more
    ending = wait_closed(sock, within=0.9)  # under the body timeout: this is no timeout
    sock.close()
    assert ending.status == 413
    payload = ending.json()
    assert payload["__type"] == "ValidationException"
    assert f"exceeds the limit of {body_limit('CreateRepository')} bytes" in payload["message"]
    assert "CreateRepository" in payload["message"]
    assert b"x-amzn-RequestId" in ending.received


def test_oversized_chunked_body_is_refused_at_the_limit(tight):
    body = json.dumps({"repositoryName": "edge/too-big-chunked",
                       "x": "a" * (2 * MiB)}).encode()
    headers = signed_headers(tight.url, "CreateRepository", body, tight.admin.key_id,
                             tight.admin.secret)
    del headers["Content-Length"]

    def chunks():
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    response = requests.post(tight.url + "/", data=chunks(), headers=headers, timeout=10)
    assert response.status_code == 413
    assert response.json()["__type"] == "ValidationException"
    names = [r["repositoryName"] for r in tight.client().describe_repositories()["repositories"]]
    assert "edge/too-big-chunked" not in names


def test_a_20_mib_layer_part_still_uploads_with_boto3(tight):
    ecr = tight.client()
    ecr.create_repository(repositoryName="edge/big-part")
    upload = ecr.initiate_layer_upload(repositoryName="edge/big-part")
    part = os.urandom(20 * MiB)
    sent = ecr.upload_layer_part(repositoryName="edge/big-part", uploadId=upload["uploadId"],
                                 partFirstByte=0, partLastByte=len(part) - 1,
                                 layerPartBlob=part)
    assert sent["lastByteReceived"] == len(part) - 1
    digest = "sha256:" + hashlib.sha256(part).hexdigest()
    done = ecr.complete_layer_upload(repositoryName="edge/big-part",
                                     uploadId=upload["uploadId"], layerDigests=[digest])
    assert done["layerDigest"] == digest


def test_a_part_over_20_mib_is_refused_unread(tight):
    part = base64.b64encode(b"\0" * (21 * MiB)).decode()
    body = json.dumps({"repositoryName": "edge/big-part", "uploadId": "x",
                       "partFirstByte": 0, "partLastByte": 21 * MiB - 1,
                       "layerPartBlob": part}).encode()
    headers = signed_headers(tight.url, "UploadLayerPart", body, tight.admin.key_id,
                             tight.admin.secret)
    sock = connect(tight.server.port)
    sock.sendall(head("POST", "/", headers))
    ending = wait_closed(sock, within=0.9)
    sock.close()
    assert ending.status == 413
    assert ending.json()["__type"] == "ValidationException"
