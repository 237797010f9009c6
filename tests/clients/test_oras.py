"""oras (PyPI) pushes an image and artifacts that refer to it; the referrers API finds them.

Two artifacts cover both ways the spec derives a referrer's `artifactType`:
  - an SBOM pushed with `oras push`, whose config media type is the artifact type (no
    `artifactType` field: the registry must fall back to `config.mediaType`);
  - a signature with an explicit `artifactType` and the empty config, whose blobs and manifest
    go through oras's upload_blob/upload_manifest (oras-py's push() cannot set artifactType).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import oras.client
import oras.oci
import pytest

from tests.support.images import (
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_EMPTY_DATA,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    busybox_layer,
    random_layer,
    sha256_digest,
)
from tests.support.oci_client import OciClient, expect, loads

pytestmark = pytest.mark.clients

SBOM_TYPE = "application/vnd.example.sbom.v1"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"


@dataclass
class Pushed:
    digest: str
    size: int
    data: bytes


@pytest.fixture
def oras_client():
    return oras.client.OrasClient(insecure=True, auth_backend="basic")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    # oras push only accepts files below the current directory.
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fetch_manifest(berth, repo: str, reference: str) -> Pushed:
    response = expect(OciClient(berth.url).get_manifest(repo, reference), 200)
    return Pushed(sha256_digest(response.content), len(response.content), response.content)


def push_image_with_oras(oras_client, berth, repo: str, workdir) -> Pushed:
    layers = [busybox_layer(), random_layer(f"{repo}-app", 32 * 1024)]
    paths = []
    for number, layer in enumerate(layers):
        path = workdir / f"layer{number}.tar.gz"
        path.write_bytes(layer.data)
        paths.append(f"{path.name}:{OCI_LAYER_GZIP}")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    (workdir / "config.json").write_text(json.dumps(config))
    response = oras_client.push(
        target=f"{berth.host}/{repo}:v1",
        files=paths,
        manifest_config=f"config.json:{OCI_CONFIG}",
        quiet=True,
    )
    assert response.status_code == 201, response.text
    image = fetch_manifest(berth, repo, "v1")
    assert response.headers["Docker-Content-Digest"] == image.digest
    return image


def push_sbom_with_oras(oras_client, berth, repo: str, workdir, image: Pushed):
    sbom = workdir / "sbom.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": repo, "packages": []}))
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=image.digest, size=image.size)
    response = oras_client.push(
        target=f"{berth.host}/{repo}:sbom",
        files=[f"{sbom.name}:application/spdx+json"],
        manifest_config=f"{os.devnull}:{SBOM_TYPE}",  # zero-length config blob, typed as the SBOM
        manifest_annotations={"org.example.sbom.format": "spdx-json"},
        subject=subject,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    return response, fetch_manifest(berth, repo, "sbom")


def push_signature_with_oras(oras_client, berth, repo: str, workdir, image: Pushed):
    container = oras_client.get_container(f"{berth.host}/{repo}:sig")
    empty = workdir / "empty.json"
    empty.write_bytes(OCI_EMPTY_DATA)
    signature = workdir / "signature.bin"
    signature.write_bytes(b"not really a signature of " + image.digest.encode())
    config = {"mediaType": OCI_EMPTY, "digest": sha256_digest(OCI_EMPTY_DATA), "size": 2}
    layer = {
        "mediaType": "application/vnd.example.signature.blob.v1",
        "digest": sha256_digest(signature.read_bytes()),
        "size": signature.stat().st_size,
    }
    for path, descriptor in [(empty, config), (signature, layer)]:
        response = oras_client.upload_blob(str(path), container, descriptor)
        assert response.status_code in (200, 201), response.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": image.size},
        "annotations": {"org.example.signer": "berth-tests"},
    }
    response = oras_client.upload_manifest(manifest, container)
    assert response.status_code == 201, response.text
    return response, fetch_manifest(berth, repo, "sig")


def referrers(berth, repo: str, digest: str, artifact_type: str | None = None):
    response = expect(OciClient(berth.url).referrers(repo, digest, artifact_type), 200)
    assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
    body = loads(response)
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response, {d["digest"]: d for d in body["manifests"]}


def test_artifacts_with_subject_are_found_through_referrers(berth, oras_client, repo, workdir):
    image = push_image_with_oras(oras_client, berth, repo, workdir)
    # Pulling the image back through oras gives the layers it pushed.
    pulled = oras_client.pull(target=f"{berth.host}/{repo}:v1", outdir=str(workdir / "pulled"))
    assert sorted(os.path.basename(p) for p in pulled) == ["layer0.tar.gz", "layer1.tar.gz"]

    sbom_response, sbom = push_sbom_with_oras(oras_client, berth, repo, workdir, image)
    sig_response, signature = push_signature_with_oras(oras_client, berth, repo, workdir, image)
    for response in (sbom_response, sig_response):
        assert response.headers.get("OCI-Subject") == image.digest, dict(response.headers)

    unfiltered, found = referrers(berth, repo, image.digest)
    assert "OCI-Filters-Applied" not in unfiltered.headers
    assert found == {
        sbom.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": sbom.digest,
            "size": sbom.size,
            "artifactType": SBOM_TYPE,  # from config.mediaType: no artifactType field
            "annotations": {"org.example.sbom.format": "spdx-json"},
        },
        signature.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": signature.digest,
            "size": signature.size,
            "artifactType": SIGNATURE_TYPE,
            "annotations": {"org.example.signer": "berth-tests"},
        },
    }

    filtered, only_sbom = referrers(berth, repo, image.digest, SBOM_TYPE)
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
    assert list(only_sbom) == [sbom.digest]
    assert only_sbom[sbom.digest] == found[sbom.digest]

    filtered, none = referrers(berth, repo, image.digest, "application/vnd.example.none")
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
    assert none == {}

    # A subject nothing refers to: 200 with an empty list, never 404.
    _, nothing = referrers(berth, repo, sbom.digest)
    assert nothing == {}
