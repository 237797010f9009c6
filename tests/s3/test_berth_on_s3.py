"""Berth nodes with their blobs on S3 (the session's Ceph RGW) and their metadata on one
PostgreSQL database: nothing of a push stays on a node's own disk, any node continues any
upload, and pulls go to the object store directly (307 to a presigned URL) or through
Berth, by config.

Node A redirects pulls (the default); node B streams them (``pull_redirect = false``).
Credentials come from a shared credentials file (0600) and a named profile, as an operator
would give them.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid

import boto3
import pytest
import requests

from tests.support.images import write_docker_context
from tests.support.oci_client import OciClient, expect
from tests.support.server import BerthServer

ENV = {"BERTH_AUTH__ENABLED": "false", "BERTH_SCANNER__ENABLED": "false",
       "BERTH_METADATA__UPGRADE": "auto"}


@pytest.fixture(scope="module")
def bucket(rgw):
    name = rgw.create_bucket(f"berth-nodes-{uuid.uuid4().hex[:12]}")
    yield name
    rgw.delete_bucket(name)


@pytest.fixture(scope="module")
def credentials_file(rgw, tmp_path_factory):
    path = tmp_path_factory.mktemp("aws") / "credentials"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[berth]\naws_access_key_id = {rgw.access_key}\n"
                f"aws_secret_access_key = {rgw.secret_key}\n")
    return path


@pytest.fixture(scope="module")
def nodes(postgres, rgw, bucket, credentials_file, tmp_path_factory):
    env = {**ENV, "BERTH_METADATA__URL": postgres.create_database("s3nodes"),
           "BERTH_STORAGE__BACKEND": "s3", "BERTH_STORAGE__BUCKET": bucket,
           "BERTH_STORAGE__ENDPOINT_URL": rgw.endpoint_url,
           "BERTH_STORAGE__REGION": rgw.region, "BERTH_STORAGE__PREFIX": "registry/",
           "BERTH_STORAGE__PROFILE": "berth",
           "BERTH_STORAGE__CREDENTIALS_FILE": str(credentials_file),
           "BERTH_STORAGE__PART_SIZE_BYTES": str(5 * 1024 * 1024)}
    started = []
    try:
        for name, redirect in (("a", "true"), ("b", "false")):
            started.append(BerthServer(
                tmp_path_factory.mktemp(f"s3-node-{name}"), workers=2,
                env={**env, "BERTH_STORAGE__PULL_REDIRECT": redirect}).start())
        yield started
    finally:
        for server in started:
            server.stop()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _objects(rgw, bucket: str, prefix: str) -> list[str]:
    listed = rgw.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_chunked_upload_alternating_between_nodes_lands_in_the_bucket(nodes, rgw, bucket):
    a, b = (OciClient(node.url) for node in nodes)
    data = os.urandom(13 * 1024 * 1024 + 5)  # two full parts and a tail
    upload = a.start_upload("s3/chunked")
    for n, start in enumerate(range(0, len(data), 4 * 1024 * 1024)):
        client = (a, b)[n % 2]
        expect(client.patch(upload, data[start:start + 4 * 1024 * 1024]), 202)
    assert upload.offset == len(data)
    expect(b.finish_upload(upload, _digest(data)), 201)

    key = f"registry/blobs/sha256/{_digest(data).split(':')[1]}"
    assert key in _objects(rgw, bucket, "registry/blobs/")
    assert _objects(rgw, bucket, "registry/uploads/") == []  # the session is gone
    for node in nodes:  # nothing of the blob on any node's disk
        assert not [p for p in node.data_dir.rglob("*") if p.is_file()
                    and p.stat().st_size == len(data)]

    redirected = a.get_blob("s3/chunked", _digest(data))
    assert redirected.status_code == 307
    assert redirected.headers["Location"].startswith(rgw.endpoint_url)
    fetched = requests.get(redirected.headers["Location"], timeout=60)
    assert fetched.status_code == 200 and fetched.content == data
    ranged = requests.get(redirected.headers["Location"], headers={"Range": "bytes=10-19"},
                          timeout=60)
    assert ranged.status_code == 206 and ranged.content == data[10:20]

    streamed = b.get_blob("s3/chunked", _digest(data))
    assert streamed.status_code == 200 and streamed.content == data
    part = b.get_blob("s3/chunked", _digest(data), headers={"Range": "bytes=6000000-6000009"})
    assert part.status_code == 206 and part.content == data[6_000_000:6_000_010]


def test_a_wrong_digest_keeps_the_session_for_a_retry_on_the_other_node(nodes):
    a, b = (OciClient(node.url) for node in nodes)
    data = os.urandom(6 * 1024 * 1024)
    upload = a.start_upload("s3/retry")
    expect(a.patch(upload, data), 202)
    refused = b.finish_upload(upload, _digest(b"something else"))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    expect(a.finish_upload(upload, _digest(data)), 201)
    assert b.blob_sha256("s3/retry", _digest(data)) == (_digest(data), len(data))


def test_get_download_url_for_layer_is_a_presigned_url_of_the_object(nodes):
    a = OciClient(nodes[0].url)
    data = os.urandom(100_000)
    a.push_blob("s3/ecr", data)
    ecr = boto3.client("ecr", endpoint_url=nodes[1].url, region_name="us-east-1",
                       aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    url = ecr.get_download_url_for_layer(repositoryName="s3/ecr",
                                         layerDigest=_digest(data))["downloadUrl"]
    assert "X-Amz-Signature=" in url
    assert requests.get(url, timeout=60).content == data


def test_docker_pushes_to_one_node_and_pulls_and_runs_from_the_other(
        nodes, docker, busybox, tmp_path):
    a, b = nodes
    context = write_docker_context(tmp_path / "ctx", busybox=busybox, message="hello from s3")
    pushed, pulled = f"{a.host}/s3/hello:v1", f"{b.host}/s3/hello:v1"
    redirected = f"{a.host}/s3/hello:v1"
    try:
        docker("build", "--quiet", "--tag", pushed, str(context))
        docker("push", pushed)
        docker("rmi", "--force", pushed)
        docker("pull", pulled)  # streamed through node B
        out = docker("run", "--rm", "--network", "none", pulled).stdout
        assert "hello from s3" in out
        docker("rmi", "--force", pulled)
        docker("pull", redirected)  # node A sends the engine to RGW for the layers
        out = docker("run", "--rm", "--network", "none", redirected).stdout
        assert "hello from s3" in out
    finally:
        docker("rmi", "--force", pushed, pulled, check=False)


def _unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert int(response.headers["Retry-After"]) > 0
    assert "blob storage" in response.json()["errors"][0]["message"]


def test_an_object_store_outage_is_503_with_retry_after_and_nothing_half_published(
        nodes, rgw):
    from tests.support.images import Image, random_layer

    a, b = (OciClient(node.url) for node in nodes)
    before = Image.build([random_layer("outage-before", 4096)])
    a.push_image("s3/outage", "before", before)
    during = [Image.build([random_layer(f"outage-{n}", 4096)]) for n in range(200)]
    rgw.stop_gateway()
    tried = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and tried < len(during):
            image = during[tried]
            tried += 1
            layer = image.layers[0]
            _unavailable(a.request("POST", f"/v2/s3/outage/blobs/uploads/?digest="
                                   f"{_digest(layer.data)}", data=layer.data))
            _unavailable(b.request("POST", "/v2/s3/outage/blobs/uploads/",
                                   headers={"Content-Length": "0"}))
            # The manifest of an image whose blobs are all there, under a new tag: its
            # bytes cannot be stored, so the tag must not appear.
            _unavailable(a.request("PUT", f"/v2/s3/outage/manifests/during-{tried}",
                                   data=before.manifest.data,
                                   headers={"Content-Type": before.manifest.media_type}))
            time.sleep(0.5)
    finally:
        rgw.start_gateway()
    assert tried >= 3  # each refused S3 call is retried once, with backoff
    assert a.tags("s3/outage") == ["before"]  # nothing half-published
    for n, image in enumerate(during[:tried]):
        (a, b)[n % 2].push_image("s3/outage", f"during-{n}", image)
    assert sorted(b.tags("s3/outage")) == sorted(["before"] + [f"during-{n}"
                                                              for n in range(tried)])
    for image in (before, during[0], during[tried - 1]):
        for blob in image.blobs():
            assert b.blob_sha256("s3/outage", blob.digest) == (blob.digest, len(blob.data))


def test_gc_on_one_node_deletes_unreferenced_objects_and_keeps_the_rest(nodes, rgw, bucket):
    import subprocess
    import sys

    from tests.support.images import Image, random_layer

    a, b = (OciClient(node.url) for node in nodes)
    kept = Image.build([random_layer("gc-kept", 4096)])
    dropped = Image.build([random_layer("gc-dropped", 4096)])
    a.push_image("s3/gc", "kept", kept)
    b.push_image("s3/gc", "dropped", dropped)
    ecr = boto3.client("ecr", endpoint_url=nodes[0].url, region_name="us-east-1",
                       aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    ecr.batch_delete_image(repositoryName="s3/gc", imageIds=[{"imageTag": "dropped"}])
    env = {**os.environ, **nodes[0].env}
    done = subprocess.run([sys.executable, "-m", "registry", "gc", "--data",
                           str(nodes[0].data_dir), "--grace", "0"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stored = set(_objects(rgw, bucket, "registry/blobs/"))

    def key(blob) -> str:
        return f"registry/blobs/sha256/{blob.digest.split(':')[1]}"

    assert {key(blob) for blob in kept.blobs()} | {key(kept.manifest)} <= stored
    assert not {key(dropped.layers[0]), key(dropped.manifest)} & stored
    for blob in kept.blobs():
        assert b.blob_sha256("s3/gc", blob.digest) == (blob.digest, len(blob.data))
