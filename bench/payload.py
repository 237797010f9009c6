"""Benchmark payloads: one pre-generated random blob file, a tiny image (config, layer,
manifest) for the request-rate workloads, and a set of distinct tiny images for push-small.

The big blob is random so no layer of the stack can compress or deduplicate it. It is written
once per run into the benchmark's work directory (same disk as the targets' data dirs) and
stays in the page cache, so reading it costs the client nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

_GEN_PIECE = 16 * 1024 * 1024

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class BlobFile:
    path: str
    size: int
    digest: str


@dataclass(frozen=True)
class SmallImage:
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def layer_digest(self) -> str:
        return sha256_digest(self.layer)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_blob_file(directory: str, size: int) -> BlobFile:
    """Write ``size`` random bytes to a new file in ``directory`` and hash them."""
    path = os.path.join(directory, f"blob-{size}.bin")
    hasher = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining > 0:
            piece = os.urandom(min(_GEN_PIECE, remaining))
            hasher.update(piece)
            out.write(piece)
            remaining -= len(piece)
    return BlobFile(path=path, size=size, digest="sha256:" + hasher.hexdigest())


def make_small_image(layer_size: int = 1024) -> SmallImage:
    """A valid one-layer OCI image whose manifest is a few hundred bytes."""
    layer = os.urandom(layer_size)
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
    }, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(layer),
                    "size": len(layer)}],
    }, indent=2).encode()
    return SmallImage(config=config, layer=layer, manifest=manifest)


def make_small_images(count: int, layer_size: int = 1024) -> tuple[SmallImage, ...]:
    """``count`` distinct small images: random layers, so configs and manifests differ too."""
    return tuple(make_small_image(layer_size) for _ in range(count))
