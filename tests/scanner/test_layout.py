"""materialize_layout: one image manifest as an OCI layout, blobs hard-linked from the store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from scanner import LayoutError, NotAnImage, is_image_manifest, materialize_layout
from tests.scanner.conftest import BlobStore
from tests.support import debian
from tests.support.images import OCI_MANIFEST, canonical_json

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def test_blobs_are_hard_links_into_the_store_and_the_index_names_the_manifest(
        tmp_path, store, wheel_image):
    store.add(wheel_image)
    manifest = json.loads(wheel_image.manifest_bytes)
    layout = materialize_layout(store.place, wheel_image.manifest_digest,
                                wheel_image.manifest_bytes, tmp_path / "layout")
    for descriptor in [manifest["config"], *manifest["layers"]]:
        linked = layout / "blobs" / "sha256" / descriptor["digest"].split(":")[1]
        assert not linked.is_symlink()  # Trivy refuses symlinked blobs
        assert linked.stat().st_ino == store.blob_path(descriptor["digest"]).stat().st_ino
    manifest_file = layout / "blobs" / "sha256" / wheel_image.manifest_digest.split(":")[1]
    assert manifest_file.read_bytes() == wheel_image.manifest_bytes
    assert json.loads((layout / "index.json").read_text())["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": wheel_image.manifest_digest,
         "size": len(wheel_image.manifest_bytes)}]
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_a_layout_outlives_the_blob_it_links(tmp_path, wheel_image):
    """Garbage collection may delete a blob mid-scan; the hard link keeps its bytes."""
    store = BlobStore(tmp_path / "store")
    store.add(wheel_image)
    layer = json.loads(wheel_image.manifest_bytes)["layers"][0]["digest"]
    expected = store.blob_path(layer).read_bytes()
    layout = materialize_layout(store.place, wheel_image.manifest_digest,
                                wheel_image.manifest_bytes, tmp_path / "layout")
    store.blob_path(layer).unlink()
    assert (layout / "blobs" / "sha256" / layer.split(":")[1]).read_bytes() == expected


def test_across_filesystems_blobs_are_copied(tmp_path, store, wheel_image):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    store.add(wheel_image)
    dest = shm / f"berth-layout-{os.getpid()}"
    try:
        layout = materialize_layout(store.place, wheel_image.manifest_digest,
                                    wheel_image.manifest_bytes, dest)
        config = json.loads(wheel_image.manifest_bytes)["config"]["digest"]
        copied = layout / "blobs" / "sha256" / config.split(":")[1]
        assert copied.read_bytes() == store.blob_path(config).read_bytes()
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_a_docker_manifest_keeps_its_media_type(tmp_path, store, wheel_image):
    store.add(wheel_image)
    manifest = json.loads(wheel_image.manifest_bytes)
    manifest["mediaType"] = DOCKER_MANIFEST
    manifest["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    data = canonical_json(manifest)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    layout = materialize_layout(store.place, digest, data, tmp_path / "layout")
    assert json.loads((layout / "index.json").read_text())["manifests"][0]["mediaType"] == \
        DOCKER_MANIFEST


def _variant(image: debian.OciImage, change) -> tuple[str, bytes]:
    manifest = json.loads(image.manifest_bytes)
    change(manifest)
    data = canonical_json(manifest)
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


BAD = [
    ("digest does not match the bytes", LayoutError,
     lambda img: ("sha256:" + "0" * 64, img.manifest_bytes)),
    ("malformed digest", LayoutError, lambda img: ("sha256:xyz", img.manifest_bytes)),
    ("an image index", NotAnImage, lambda img: _variant(img, lambda m: m.update(
        mediaType="application/vnd.oci.image.index.v1+json", manifests=[]))),
    ("an artifact (SBOM) manifest", NotAnImage, lambda img: _variant(img, lambda m: m[
        "config"].update(mediaType="application/vnd.cyclonedx+json"))),
    ("a layer missing from the store", LayoutError, lambda img: _variant(img, lambda m: m[
        "layers"].append({"mediaType": "x", "digest": "sha256:" + "1" * 64, "size": 1}))),
    ("not JSON", LayoutError,
     lambda img: ("sha256:" + hashlib.sha256(b"[").hexdigest(), b"[")),
]


@pytest.mark.parametrize("make, error", [(c[2], c[1]) for c in BAD], ids=[c[0] for c in BAD])
def test_what_cannot_be_laid_out_is_refused(tmp_path, store, wheel_image, make, error):
    store.add(wheel_image)
    digest, data = make(wheel_image)
    with pytest.raises(error):
        materialize_layout(store.place, digest, data, tmp_path / "layout")


def test_a_non_empty_destination_is_refused(tmp_path, store, wheel_image):
    store.add(wheel_image)
    (tmp_path / "layout").mkdir()
    (tmp_path / "layout" / "stray").write_text("x")
    with pytest.raises(LayoutError):
        materialize_layout(store.place, wheel_image.manifest_digest,
                           wheel_image.manifest_bytes, tmp_path / "layout")


def test_is_image_manifest_tells_images_from_indexes_and_artifacts(wheel_image):
    assert is_image_manifest(wheel_image.manifest_bytes)
    assert not is_image_manifest(b'{"mediaType":"application/vnd.oci.image.index.v1+json",'
                                 b'"manifests":[]}')
    assert not is_image_manifest(b'{"config":{"mediaType":"application/vnd.cyclonedx+json"}}')
    assert not is_image_manifest(b"not json")
