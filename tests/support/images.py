"""Deterministic builders for image content: layers, configs, manifests, indexes, OCI layouts.

Everything here is pure Python and byte-for-byte reproducible for the same arguments (fixed
mtimes, owners and gzip headers), so tests can compare digests across runs and clients.

    Blob            bytes + media type; digest, size, descriptor()
    Layer           a gzip'd tar Blob plus the digest of the uncompressed tar (diff_id)
    Image           config + layers + manifest, for one platform
    MultiPlatform   an image index over several Images
    write_oci_layout(dir, ...)      oci-layout, index.json, blobs/sha256/<hex>
    write_docker_context(dir)       Dockerfile FROM scratch + busybox-static
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shutil
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DATA = b"{}"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

BUSYBOX_PATH = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "echo", "cat", "ls", "true")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    """Compact, key-sorted JSON: the bytes a manifest is pushed and compared as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Content with a media type; descriptor() is what a manifest uses to reference it."""

    data: bytes
    media_type: str = "application/octet-stream"

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Layer(Blob):
    """A gzip'd tar layer; `diff_id` is the digest of the uncompressed tar (config rootfs)."""

    diff_id: str = ""


# -- layers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TarEntry:
    """One tar member: a regular file (data), a directory (is_dir) or a symlink (link_target)."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    link_target: str | None = None
    is_dir: bool = False


def tar_layer(entries: Iterable[TarEntry]) -> Layer:
    """A reproducible gzip'd tar: mtime 0, uid/gid 0, no gzip name or timestamp."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if entry.is_dir:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif entry.link_target is not None:
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.link_target
                tar.addfile(info)
            else:
                info.size, info.mode = len(entry.data), entry.mode
                tar.addfile(info, io.BytesIO(entry.data))
    tar_bytes = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", filename="", mtime=0) as gz:
        gz.write(tar_bytes)
    return Layer(
        data=compressed.getvalue(), media_type=OCI_LAYER_GZIP, diff_id=sha256_digest(tar_bytes)
    )


def busybox_entries(busybox: Path = BUSYBOX_PATH) -> list[TarEntry]:
    """`bin/busybox` from busybox-static plus applet symlinks (`bin/sh` -> busybox, ...)."""
    return [
        TarEntry("bin", is_dir=True),
        TarEntry("bin/busybox", data=busybox.read_bytes(), mode=0o755),
        *(TarEntry(f"bin/{applet}", link_target="busybox") for applet in BUSYBOX_APPLETS),
    ]


def busybox_layer(busybox: Path = BUSYBOX_PATH) -> Layer:
    return tar_layer(busybox_entries(busybox))


def random_bytes(seed: str | int, size: int) -> bytes:
    """`size` pseudo-random (incompressible) bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


def random_layer(seed: str | int, size: int = 64 * 1024, path: str | None = None) -> Layer:
    """A layer with one file of `size` random bytes; distinct seeds give distinct layers."""
    name = path or f"data/{seed}.bin"
    parent = name.rsplit("/", 1)[0] if "/" in name else None
    entries = [TarEntry(parent, is_dir=True)] if parent else []
    return tar_layer([*entries, TarEntry(name, data=random_bytes(seed, size))])


# -- configs, manifests, indexes -----------------------------------------------------------


def image_config(
    layers: Sequence[Layer],
    *,
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    cmd: Sequence[str] = ("/bin/busybox", "echo", "hello"),
    labels: Mapping[str, str] | None = None,
) -> Blob:
    config: dict = {
        "architecture": architecture,
        "os": os,
        "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"], "Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created_by": f"berth tests layer {i}"} for i in range(len(layers))],
    }
    if variant:
        config["variant"] = variant
    return Blob(canonical_json(config), OCI_CONFIG)


def image_manifest(
    config: Blob,
    layers: Sequence[Blob],
    *,
    annotations: Mapping[str, str] | None = None,
    subject: Blob | None = None,
    artifact_type: str | None = None,
) -> Blob:
    manifest: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if subject is not None:
        manifest["subject"] = subject.descriptor()
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Blob(canonical_json(manifest), OCI_MANIFEST)


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def as_dict(self) -> dict:
        value = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            value["variant"] = self.variant
        return value


@dataclass(frozen=True)
class Image:
    """One platform's image: config, layers and the manifest that ties them together."""

    config: Blob
    layers: tuple[Layer, ...]
    manifest: Blob
    platform: Platform = field(default_factory=Platform)

    @classmethod
    def build(
        cls,
        layers: Sequence[Layer],
        *,
        platform: Platform | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> "Image":
        platform = platform or Platform()
        config = image_config(
            layers,
            os=platform.os,
            architecture=platform.architecture,
            variant=platform.variant,
            labels=labels,
        )
        manifest = image_manifest(config, layers, annotations=annotations)
        return cls(config=config, layers=tuple(layers), manifest=manifest, platform=platform)

    def blobs(self) -> list[Blob]:
        """Config and layers (not the manifest), in push order."""
        return [self.config, *self.layers]

    @property
    def digest(self) -> str:
        return self.manifest.digest


def image_index(images: Sequence[Image], *, annotations: Mapping[str, str] | None = None) -> Blob:
    index: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            image.manifest.descriptor(platform=image.platform.as_dict()) for image in images
        ],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return Blob(canonical_json(index), OCI_INDEX)


@dataclass(frozen=True)
class MultiPlatform:
    """An image index over per-platform images."""

    images: tuple[Image, ...]
    index: Blob

    def all_blobs(self) -> list[Blob]:
        """Every distinct blob and manifest, the index included, deduplicated by digest."""
        seen: dict[str, Blob] = {}
        for image in self.images:
            for blob in [*image.blobs(), image.manifest]:
                seen.setdefault(blob.digest, blob)
        seen.setdefault(self.index.digest, self.index)
        return list(seen.values())


def multi_platform_image(seed: str = "berth") -> MultiPlatform:
    """linux/amd64 and linux/arm64, three layers each; one data layer is shared by both."""
    shared = random_layer(f"{seed}-shared", 300 * 1024, path="usr/share/berth/shared.bin")
    amd64 = Image.build(
        [busybox_layer(), shared, random_layer(f"{seed}-amd64", 96 * 1024, path="app/amd64")],
        platform=Platform(architecture="amd64"),
    )
    arm64 = Image.build(
        [
            random_layer(f"{seed}-arm64-bin", 200 * 1024, path="bin/app"),
            shared,
            random_layer(f"{seed}-arm64", 80 * 1024, path="app/arm64"),
        ],
        platform=Platform(architecture="arm64", variant="v8"),
    )
    images = (amd64, arm64)
    index = image_index(images, annotations={"org.opencontainers.image.title": seed})
    return MultiPlatform(images=images, index=index)


# -- on-disk formats -----------------------------------------------------------------------


def write_oci_layout(directory: Path, root: Blob, blobs: Iterable[Blob], *, tag: str) -> Path:
    """Write an OCI image layout whose index.json names `root` (manifest or index) as `tag`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    for blob in [*blobs, root]:
        alg, hex_ = blob.digest.split(":", 1)
        path = directory / "blobs" / alg / hex_
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob.data)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [root.descriptor(annotations={REF_NAME_ANNOTATION: tag})],
    }
    (directory / "index.json").write_bytes(canonical_json(index))
    return directory


def read_oci_layout(directory: Path) -> tuple[dict, dict[str, bytes]]:
    """Return (index.json as dict, {digest: bytes} for every file under blobs/)."""
    index = json.loads((directory / "index.json").read_bytes())
    blobs: dict[str, bytes] = {}
    for path in (directory / "blobs").glob("*/*"):
        blobs[f"{path.parent.name}:{path.name}"] = path.read_bytes()
    return index, blobs


def write_docker_context(
    directory: Path, *, busybox: Path = BUSYBOX_PATH, message: str = "hello"
) -> Path:
    """A `docker build` context: FROM scratch, busybox-static with applet links, a CMD.

    Two COPY steps give two layers, so a second push can show every layer as existing.
    """
    rootfs = directory / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "busybox").chmod(0o755)
    for applet in BUSYBOX_APPLETS:
        link = rootfs / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    etc = directory / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "motd").write_text(f"{message}\n")
    (directory / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY rootfs/ /\n"
        "COPY etc/ /etc/\n"
        'CMD ["/bin/busybox", "cat", "/etc/motd"]\n'
    )
    return directory
