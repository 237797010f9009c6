"""Inputs of the scan benchmark (bench/bench_scan.py): images and the vulnerability DB.

All of it is real data, built the way the scanner tests build it (tests/support/debian.py,
tests/scanner/fixtures.py) and cached in the same place, so a warm test cache means no
network:

- ``bookworm()``: the Debian bookworm minbase image (mmdebstrap, ``main`` only, plus the
  packages of ``fixtures.BOOKWORM_PACKAGES``) as an OCI layout, and a Trivy DB holding the
  advisories harvested for it from bookworm-security changelogs;
- ``warmup_image()``: real PyPI wheels with known advisories, scanned once per server before
  anything is timed, so the timed scan is not the server's first (see bench_scan.py);
- ``loader_images(n)``: n distinct Debian-like images, each one layer holding a slice of
  the real bookworm rootfs (dpkg database, os-release, executables, Python stdlib) and the
  wheels: every one is a full cold scan (no layer shared with another) with real findings;
- ``random_image(seed, size)``: one random-data layer of ``size`` bytes, for push latency.

Images are ``PushImage``s: blobs in push order (config, layers) and the manifest, in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.scanner import fixtures
from tests.scanner.conftest import db_layer
from tests.support import debian
from tests.support.images import (OCI_LAYER_GZIP, OCI_MANIFEST, Image, Layer, TarEntry,
                                  random_layer, sha256_digest)
from tests.support.trivydb import DEBIAN_SOURCE

# Parts of the bookworm rootfs each loader image carries (see loader_images).
LOADER_TREES = ("etc/", "var/lib/dpkg/", "usr/bin/", "usr/sbin/", "usr/lib/os-release",
                "usr/lib/python3.11/")


@dataclass(frozen=True)
class PushImage:
    """What a client uploads: ``blobs`` as (digest, bytes) in push order, then the manifest."""

    blobs: tuple[tuple[str, bytes], ...]
    manifest: bytes
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.blobs) + len(self.manifest)

    @classmethod
    def from_image(cls, image: Image) -> "PushImage":
        return cls(tuple((blob.digest, blob.data) for blob in image.blobs()), image.manifest.data)

    @classmethod
    def from_layout(cls, layout: debian.OciImage) -> "PushImage":
        """The image of an OCI layout, its blobs read into memory (config first)."""
        manifest = json.loads(layout.manifest_bytes)
        digests = [manifest["config"]["digest"], *(l["digest"] for l in manifest["layers"])]
        return cls(tuple((d, layout.blob_path(d).read_bytes()) for d in digests),
                   layout.manifest_bytes)


@dataclass(frozen=True)
class Bookworm:
    layout: debian.OciImage  # for the bare `trivy image --input <layout>@<digest>` run
    image: PushImage  # the same image, for the push
    db_layer: bytes  # Trivy DB artifact layer (tar.gz) with the harvested advisories
    packages: int
    advisories: int


def bookworm(work: Path) -> Bookworm:
    """The bookworm image and its DB, exactly as tests/scanner/test_bookworm.py has them."""
    rootfs = debian.bookworm_rootfs(fixtures.BOOKWORM_PACKAGES)
    cached = debian.cache_root() / "images" / f"{rootfs.stem}-{rootfs.stat().st_size}"
    layout = debian.build_image(cached, [rootfs])
    advisories = debian.security_advisories(rootfs)
    if not advisories:
        raise RuntimeError("bookworm-security fixed nothing in the image: the harvest is broken")
    packages = {source: {cve: {"FixedVersion": fixed} for cve, fixed in cves.items()}
                for source, cves in advisories.items()}
    layer = db_layer(work / "bookworm-db", {"debian 12": packages,
                                            "data-source": {"debian 12": DEBIAN_SOURCE}})
    status = debian.read_member(rootfs, "var/lib/dpkg/status")
    return Bookworm(layout, PushImage.from_layout(layout), layer,
                    len(debian.installed_packages(status)),
                    sum(len(cves) for cves in advisories.values()))


def warmup_image(seed: str) -> PushImage:
    """The test wheels plus a unique small file, so each server's warm-up is a new image."""
    return PushImage.from_image(Image.build([fixtures.wheel_layer(),
                                             random_layer(f"warmup-{seed}", 1024)]))


def loader_images(count: int) -> list[PushImage]:
    """``count`` distinct Debian-like images, one unique layer each (see module docstring).

    The layer is a unique marker file, then ``LOADER_TREES`` of the bookworm rootfs (the
    dpkg database, os-release, the executables, Python's stdlib) and the test wheels: real
    files for every Trivy analyzer, about 53 MB uncompressed and 20 MB gzip'd.
    """
    rootfs = debian.bookworm_rootfs(fixtures.BOOKWORM_PACKAGES)
    body = _tar_members(_loader_members(rootfs))
    images = []
    for index in range(count):
        marker = _tar_members([(TarEntry(f"etc/berth-bench-{index}", data=os.urandom(64)),
                                None)])
        tar = marker + body + b"\0" * 1024  # two zero blocks end the archive
        layer = Layer(data=gzip.compress(tar, compresslevel=1, mtime=0),
                      media_type=OCI_LAYER_GZIP, diff_id=sha256_digest(tar))
        images.append(PushImage.from_image(Image.build([layer])))
    return images


def _loader_members(rootfs: Path) -> Iterator[tuple[tarfile.TarInfo | TarEntry, bytes | None]]:
    with tarfile.open(rootfs) as source:
        for member in source:
            if member.name.removeprefix("./").startswith(LOADER_TREES):
                data = source.extractfile(member).read() if member.isfile() else None
                yield member, data
    for wheel in debian.wheels(*fixtures.WHEELS):
        for entry in debian.wheel_entries(wheel):
            yield entry, None


def _tar_members(members) -> bytes:
    """Tar headers and data of ``members`` without the end-of-archive blocks, so that
    pieces can be concatenated."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            if isinstance(member, TarEntry):
                info = tarfile.TarInfo(member.path)
                info.size, info.mode, data = len(member.data), member.mode, member.data
            else:
                info = member
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        end = tar.offset
    return raw.getvalue()[:end]


def random_image(seed: str, size: int) -> PushImage:
    """One layer holding one file of ``size`` random (incompressible) bytes."""
    return PushImage.from_image(Image.build([random_layer(seed, size, path="data/blob.bin")]))
