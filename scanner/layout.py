"""A per-scan OCI image layout, materialised out of Berth's content-addressed blob store.

::

    <dest>/
      oci-layout            {"imageLayoutVersion": "1.0.0"}
      index.json            one entry: the manifest (mediaType, digest, size)
      blobs/<alg>/<hex>     the manifest (written), its config and layers (placed by the store)

Trivy reads such a directory with ``trivy image --input <dest>@<digest>`` (scanning.md
§2.3). It refuses symlinked blobs, so the store places real files (``BlobStore.materialize``):
hard links from the filesystem store, where no bytes are copied and a blob that garbage
collection removes mid-scan stays readable through the link until the layout is deleted;
downloads from a remote store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry.oci.digests import parse_digest
from registry.oci.errors import OCIError


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_CONFIGS = frozenset({"application/vnd.oci.image.config.v1+json",
                           "application/vnd.docker.container.image.v1+json"})


class LayoutError(ValueError):
    """The manifest cannot be laid out for a scan (bad digest, missing blob, bad JSON)."""


class NotAnImage(LayoutError):
    """The manifest is an index or an artifact, not a container image: nothing to scan."""


def materialize_layout(place: Callable[[str, Path], None], manifest_digest: str,
                       manifest_bytes: bytes, dest: Path) -> Path:
    """Lay out one image manifest under ``dest`` and return ``dest`` (synchronous: run it on
    a thread, placing a blob may download it).

    ``place(digest, file)`` puts a blob's bytes at the new path ``file`` (raising
    FileNotFoundError when the store lacks it). ``dest`` must not exist or be empty; the
    caller owns it and removes it after the scan.

    Raises:
        LayoutError: ``manifest_bytes`` do not hash to ``manifest_digest``, are not JSON, a
            digest is malformed, or a referenced blob is missing from the store.
        NotAnImage: the manifest is an image index, or its config is not an image config.
    """
    manifest = _parse_manifest(manifest_digest, manifest_bytes)
    media_type = _image_media_type(manifest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise LayoutError(f"layout directory {dest} is not empty")
    descriptors = [manifest["config"], *manifest.get("layers", [])]
    for digest in dict.fromkeys(_digest_of(d) for d in descriptors):
        _place_blob(place, digest, _blob_file(dest, digest))
    _blob_file(dest, manifest_digest).write_bytes(manifest_bytes)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": media_type, "digest": manifest_digest, "size": len(manifest_bytes)}]}
    (dest / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return dest


def is_image_manifest(manifest_bytes: bytes) -> bool:
    """True when the bytes are an image manifest a scanner can read (not an index, not an
    artifact such as an SBOM or a signature)."""
    try:
        _image_media_type(json.loads(manifest_bytes))
    except (LayoutError, ValueError, TypeError, AttributeError):
        return False
    return True


def _parse_manifest(digest: str, data: bytes) -> dict[str, Any]:
    try:
        parsed = parse_digest(digest)
    except OCIError:
        raise LayoutError(f"invalid manifest digest {digest[:80]!r}") from None
    if hashlib.new(parsed.algorithm, data).hexdigest() != parsed.hex:
        raise LayoutError(f"manifest bytes do not match {digest}")
    try:
        manifest = json.loads(data)
    except ValueError:
        raise LayoutError(f"manifest {digest} is not JSON") from None
    if not isinstance(manifest, dict):
        raise LayoutError(f"manifest {digest} is not a JSON object")
    return manifest


def _image_media_type(manifest: dict[str, Any]) -> str:
    media_type = manifest.get("mediaType")
    if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
        raise NotAnImage("an image index: scan each platform manifest instead")
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise LayoutError("manifest has no config descriptor")
    if config.get("mediaType") not in IMAGE_CONFIGS:
        raise NotAnImage(f"not a container image (config {config.get('mediaType')!r})")
    if media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
        return media_type
    if media_type is None:  # optional in OCI manifests; the config type tells the flavour
        return DOCKER_MANIFEST if config["mediaType"].startswith(
            "application/vnd.docker") else OCI_MANIFEST
    raise NotAnImage(f"unsupported manifest media type {media_type!r}")


def _digest_of(descriptor: Any) -> str:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise LayoutError("descriptor without a digest")
    try:
        parse_digest(descriptor["digest"])
    except OCIError:
        raise LayoutError(f"invalid digest {descriptor['digest'][:80]!r}") from None
    return descriptor["digest"]


def _blob_file(dest: Path, digest: str) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    path = dest / "blobs" / algorithm / hex_digest
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _place_blob(place: Callable[[str, Path], None], digest: str, target: Path) -> None:
    try:
        place(digest, target)
    except FileNotFoundError:
        raise LayoutError(f"blob {digest} is not in the store") from None
