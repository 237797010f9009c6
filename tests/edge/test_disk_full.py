"""A full disk is a clear 5xx that says "disk full", on both APIs, and wedges nothing: once
space is freed the next push works.

The data directory is a small tmpfs (we run as root in the test environment); a filler file
takes the rest of its space. Store errors reach the wire in one place
(``registry/middleware.py``): OCI answers 503 ``UNAVAILABLE``, ECR a ``ServerException``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from registry.app import create_app
from registry.config import load_config
from registry.metadata.errors import StoreUnavailableError
from registry.metadata.store import SQLiteMetadataStore
from tests.edge.test_error_shapes import ECR_HEADERS, TARGET, FailingMetadata
from tests.oci.helpers import image_manifest, push_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _config(data: Path):
    return load_config(environ={}, overrides={
        "data_dir": str(data), "gc.enabled": False, "auth.enabled": False,
        "scanner.enabled": False})


def _fill(disk: Path) -> Path:
    """Take every free byte of the disk with one file; return it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * (1 << 20)
        while True:
            try:
                f.write(chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _put_manifest(client, repo: str, tag: str, manifest: bytes):
    return await client.put(f"/v2/{repo}/manifests/{tag}", data=manifest,
                            headers={"Content-Type": OCI_MANIFEST})


def _ecr(client, operation: str, params: dict):
    return client.post("/", data=json.dumps(params),
                       headers={**ECR_HEADERS, "X-Amz-Target": TARGET + operation})


async def test_a_full_disk_is_a_clear_5xx_and_freeing_space_unwedges_pushes(small_disk,
                                                                          aiohttp_client):
    data = small_disk / "data"
    data.mkdir(mode=0o700)
    client = await aiohttp_client(create_app(_config(data)))
    config_blob = b'{"architecture":"amd64","os":"linux"}'
    layer = os.urandom(4096)
    await push_blob(client, "edge/full", config_blob)
    await push_blob(client, "edge/full", layer)
    manifest = image_manifest(config_blob, [layer])
    assert (await _put_manifest(client, "edge/full", "v1", manifest)).status == 201

    filler = _fill(small_disk)
    # A blob upload, a manifest push and an ECR PutImage all need space.
    refused = await client.post(f"/v2/edge/full/blobs/uploads/?digest={_sha256(layer * 2)}",
                                data=layer * 2)
    assert refused.status == 503
    error = (await refused.json())["errors"][0]
    assert error["code"] == "UNAVAILABLE" and "disk full" in error["message"]
    other = image_manifest(config_blob, [layer], annotations={"a": "b" * 2000})
    refused = await _put_manifest(client, "edge/full", "v2", other)
    assert refused.status == 503
    assert "disk full" in (await refused.json())["errors"][0]["message"]
    ecr = await _ecr(client, "PutImage", {"repositoryName": "edge/full", "imageTag": "v3",
                                          "imageManifest": other.decode()})
    assert ecr.status == 500
    body = await ecr.json(content_type=None)
    assert body["__type"] == "ServerException" and "disk full" in body["message"]

    filler.unlink()
    assert (await _put_manifest(client, "edge/full", "v2", other)).status == 201
    assert (await client.get("/v2/edge/full/manifests/v2")).status == 200
    await push_blob(client, "edge/full", layer * 2)


async def test_a_full_metadata_database_is_named_in_the_answer_and_then_recovers(
        small_disk, aiohttp_client):
    """SQLite itself runs out of space (SQLITE_FULL) on metadata-only writes: the answer says
    so, the writer connection is not left in a transaction, and the next write succeeds."""
    data = small_disk / "data"
    data.mkdir(mode=0o700)
    client = await aiohttp_client(create_app(_config(data)))
    assert (await _ecr(client, "CreateRepository", {"repositoryName": "edge/first"})).status \
        == 200
    filler = _fill(small_disk)
    tags = [{"Key": f"k{i:02d}", "Value": "v" * 256} for i in range(50)]
    failure = None
    for i in range(400):  # the WAL grows until a write needs a page the disk cannot give
        resp = await _ecr(client, "CreateRepository", {"repositoryName": f"edge/r{i}",
                                                       "tags": tags})
        if resp.status != 200:
            failure = resp
            break
    assert failure is not None, "the metadata database never ran out of space"
    assert failure.status == 500
    body = await failure.json(content_type=None)
    assert body["__type"] == "ServerException"
    assert "metadata store: disk full" in body["message"]

    filler.unlink()
    resp = await _ecr(client, "CreateRepository", {"repositoryName": "edge/after"})
    assert resp.status == 200, await resp.text()
    described = await _ecr(client, "DescribeRepositories", {"repositoryNames": ["edge/after"]})
    assert described.status == 200


@pytest.mark.parametrize("api", ["oci", "ecr"])
async def test_store_errors_are_mapped_once_per_api(tmp_path, aiohttp_client, api):
    """Whatever operation meets it, a StoreUnavailableError is the same answer."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    config = _config(data)
    real = SQLiteMetadataStore(config.metadata_path)
    app = create_app(config, metadata=FailingMetadata(
        real, "get_repository", lambda: StoreUnavailableError("disk full")))
    client = await aiohttp_client(app)
    if api == "oci":
        resp = await client.get("/v2/edge/x/tags/list")
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        error = (await resp.json())["errors"][0]
        assert error == {"code": "UNAVAILABLE",
                         "message": "temporarily unable to store or read: metadata store: "
                                    "disk full"}
    else:
        resp = await _ecr(client, "DescribeImages", {"repositoryName": "edge/x"})
        assert resp.status == 500
        body = await resp.json(content_type=None)
        assert body["__type"] == "ServerException"
        assert "metadata store: disk full" in body["message"]
