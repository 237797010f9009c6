"""skopeo copies a multi-platform, multi-layer OCI layout into Berth and back out, byte for byte."""

from __future__ import annotations

import pytest

from tests.support.images import OCI_INDEX, multi_platform_image, read_oci_layout, write_oci_layout
from tests.support.oci_client import OciClient, expect

pytestmark = pytest.mark.clients


def test_copy_oci_layout_in_and_out_byte_identical(berth, skopeo, repo, tmp_path):
    image = multi_platform_image(seed=repo)
    source = write_oci_layout(tmp_path / "in", image.index, image.all_blobs(), tag="v1")
    remote = f"docker://{berth.host}/{repo}:v1"

    skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
           f"oci:{source}:v1", remote)

    # What the registry holds: the index by tag and every manifest and blob by digest.
    client = OciClient(berth.url)
    index = expect(client.get_manifest(repo, "v1"), 200)
    assert index.content == image.index.data
    assert index.headers["Docker-Content-Digest"] == image.index.digest
    assert index.headers["Content-Type"] == OCI_INDEX
    for platform_image in image.images:
        manifest = expect(client.get_manifest(repo, platform_image.digest), 200)
        assert manifest.content == platform_image.manifest.data
        for blob in platform_image.blobs():
            assert client.blob_sha256(repo, blob.digest) == (blob.digest, blob.size)

    out = tmp_path / "out"
    skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false",
           remote, f"oci:{out}:v1")

    out_index, out_blobs = read_oci_layout(out)
    [root] = out_index["manifests"]
    assert root["digest"] == image.index.digest
    assert root["mediaType"] == OCI_INDEX
    assert root["size"] == image.index.size
    expected = {blob.digest: blob.data for blob in image.all_blobs()}
    assert sorted(out_blobs) == sorted(expected)
    for digest, data in expected.items():
        assert out_blobs[digest] == data, f"{digest} differs after the round trip"
