"""Every ECR operation Berth serves, driven through the real aws CLI in one scenario.

Each step is `aws ecr <command> ...` against the live server; the table says what the JSON
answer must contain. (boto3 drives the same operations in the other modules.)
"""

from __future__ import annotations

import base64
import hashlib
import json

from tests.support.images import Image, random_layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def run(auth_server, *args: str) -> dict:
    out = auth_server.aws("ecr", *args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


def test_every_operation_through_the_aws_cli(auth_server, name, tmp_path):
    r = lambda *a: run(auth_server, *a)  # noqa: E731
    repo = r("create-repository", "--repository-name", name, "--tags", "Key=team,Value=a",
             "--image-tag-mutability", "MUTABLE_WITH_EXCLUSION",
             "--image-tag-mutability-exclusion-filters", "filterType=WILDCARD,filter=rel-*",
             "--image-scanning-configuration", "scanOnPush=true",
             "--encryption-configuration", "encryptionType=AES256")["repository"]
    arn = repo["repositoryArn"]
    assert r("describe-repositories", "--repository-names", name)["repositories"][0][
        "repositoryArn"] == arn

    # Layers through the data plane, then the manifest through PutImage.
    image = Image.build([random_layer("cli", 2048)])
    for blob in image.blobs():
        upload = r("initiate-layer-upload", "--repository-name", name)
        part = tmp_path / "part"
        part.write_bytes(blob.data)
        done = r("upload-layer-part", "--repository-name", name, "--upload-id",
                 upload["uploadId"], "--part-first-byte", "0", "--part-last-byte",
                 str(len(blob.data) - 1), "--layer-part-blob", f"fileb://{part}")
        assert done["lastByteReceived"] == len(blob.data) - 1
        digest = "sha256:" + hashlib.sha256(blob.data).hexdigest()
        assert r("complete-layer-upload", "--repository-name", name, "--upload-id",
                 upload["uploadId"], "--layer-digests", digest)["layerDigest"] == digest
    layer = image.layers[0].digest
    available = r("batch-check-layer-availability", "--repository-name", name,
                  "--layer-digests", layer)
    assert available["layers"][0]["layerAvailability"] == "AVAILABLE"
    assert r("get-download-url-for-layer", "--repository-name", name, "--layer-digest",
             layer)["layerDigest"] == layer
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_bytes(image.manifest.data)
    put = r("put-image", "--repository-name", name, "--image-tag", "v1",
            "--image-manifest", f"file://{manifest_file}",
            "--image-manifest-media-type", OCI_MANIFEST)
    assert put["image"]["imageId"]["imageDigest"] == image.digest
    got = r("batch-get-image", "--repository-name", name, "--image-ids", "imageTag=v1")
    assert got["images"][0]["imageId"]["imageDigest"] == image.digest
    assert r("list-images", "--repository-name", name)["imageIds"] == [
        {"imageDigest": image.digest, "imageTag": "v1"}]
    details = r("describe-images", "--repository-name", name)["imageDetails"]
    assert details[0]["imageTags"] == ["v1"]

    # Settings, policies, tags.
    assert r("put-image-tag-mutability", "--repository-name", name, "--image-tag-mutability",
             "IMMUTABLE")["imageTagMutability"] == "IMMUTABLE"
    assert r("put-image-scanning-configuration", "--repository-name", name,
             "--image-scanning-configuration", "scanOnPush=false")[
        "imageScanningConfiguration"] == {"scanOnPush": False}
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "read", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "ecr:BatchGetImage"}]})
    assert r("set-repository-policy", "--repository-name", name, "--policy-text",
             policy)["policyText"] == policy
    assert r("get-repository-policy", "--repository-name", name)["policyText"] == policy
    assert r("delete-repository-policy", "--repository-name", name)["policyText"] == policy
    registry_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "repl", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": ["ecr:ReplicateImage"],
        "Resource": "arn:aws:ecr:us-east-1:000000000000:repository/*"}]})
    assert r("put-registry-policy", "--policy-text", registry_policy)["policyText"] == \
        registry_policy
    assert r("get-registry-policy")["policyText"] == registry_policy
    assert r("delete-registry-policy")["policyText"] == registry_policy
    assert r("describe-registry")["registryId"] == "000000000000"
    assert r("put-account-setting", "--name", "BLOB_MOUNTING", "--value", "ENABLED")[
        "value"] == "ENABLED"
    assert r("get-account-setting", "--name", "BLOB_MOUNTING")["value"] == "ENABLED"
    r("put-account-setting", "--name", "BLOB_MOUNTING", "--value", "DISABLED")
    r("tag-resource", "--resource-arn", arn, "--tags", "Key=env,Value=prod")
    r("untag-resource", "--resource-arn", arn, "--tag-keys", "team")
    assert r("list-tags-for-resource", "--resource-arn", arn)["tags"] == [
        {"Key": "env", "Value": "prod"}]

    # Login token, deletes.
    token = r("get-authorization-token")["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(token).startswith(b"AWS:")
    deleted = r("batch-delete-image", "--repository-name", name, "--image-ids", "imageTag=v1")
    assert deleted["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v1"}]
    assert r("delete-repository", "--repository-name", name, "--force")["repository"][
        "repositoryName"] == name
