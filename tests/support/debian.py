"""Real test images and real advisories from Debian's and PyPI's package repositories.

Built once and cached under ``cache_root()`` (``$BERTH_TEST_CACHE``, else
``$XDG_CACHE_HOME/berth-tests``, else ``/var/tmp/berth-test-cache``), so only a cold run
touches the network (scanning.md §9a, §10)::

    <cache>/
      debian/<key>.tar              mmdebstrap rootfs (bookworm, minbase, main only)
      debian/<key>-advisories.json  CVEs fixed in bookworm-security, per source package
      apt-security/                 private apt state for bookworm-security (lists, debs)
      wheels/                       pip-downloaded wheels
      images/<key>/                 OCI image layouts built from the above

    bookworm_rootfs(packages)       -> Path of the rootfs tar
    security_advisories(rootfs)     -> {source package: {CVE: fixed source version}}
    build_image(dest, layers)       -> OciImage (layers: uncompressed tar paths or Layers)
    wheels(*requirements)           -> [wheel paths];  wheel_entries(wheel) -> [TarEntry]
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import (OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Layer,
                                  TarEntry, canonical_json)

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SITE_PACKAGES = "usr/local/lib/python3.11/site-packages"
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")


def cache_root() -> Path:
    explicit = os.environ.get("BERTH_TEST_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "berth-tests" if xdg else Path("/var/tmp/berth-test-cache")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builders of one cache entry across processes (parallel test runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _run(cmd: Sequence[str], *, cwd: Path | None = None, timeout: float = 600) -> str:
    result = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return result.stdout


def _apt_install(package: str, binary: str) -> None:
    """Install a Debian package when its binary is missing (root; scripts/test.sh does the
    same up front)."""
    if shutil.which(binary):
        return
    env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
               "--no-install-recommends", package]
    try:
        _run(env_cmd)
    except RuntimeError:
        _run(["apt-get", "update", "-q"])
        _run(env_cmd)


# -- (a) a bookworm root filesystem ------------------------------------------------------


def bookworm_rootfs(packages: Sequence[str] = ()) -> Path:
    """A bookworm minbase rootfs tar from Debian's main component, plus ``packages``.

    ``main`` only, never ``bookworm-security``: by construction the packages are older than
    the security suite, which is what ``security_advisories`` harvests.
    """
    include = sorted(packages)
    target = cache_root() / "debian" / f"bookworm-{_key('bookworm', 'minbase', include)}.tar"
    with _locked(target):
        if not target.exists():
            _apt_install("mmdebstrap", "mmdebstrap")
            partial = target.with_suffix(".partial.tar")
            cmd = ["mmdebstrap", "--quiet", "--variant=minbase", "--components=main"]
            if include:
                cmd.append("--include=" + ",".join(include))
            _run([*cmd, "bookworm", str(partial), MIRROR], timeout=900)
            os.replace(partial, target)
    return target


def read_member(tar_path: Path, name: str) -> bytes:
    """One file's bytes from an uncompressed tar (names with or without ``./``)."""
    with tarfile.open(tar_path) as tar:
        for candidate in (name, "./" + name):
            try:
                stream = tar.extractfile(candidate)
            except KeyError:
                continue
            if stream is not None:
                return stream.read()
    raise KeyError(f"{name} not in {tar_path}")


# -- (b) advisories from bookworm-security changelogs ------------------------------------


@dataclass(frozen=True)
class Installed:
    package: str
    version: str
    architecture: str
    source: str
    source_version: str


def installed_packages(status: bytes) -> list[Installed]:
    """Installed packages from a dpkg ``status`` file (``Source: name (version)`` parsed)."""
    from debian.deb822 import Deb822

    found = []
    for para in Deb822.iter_paragraphs(io.BytesIO(status)):
        if para.get("Status", "").split()[-1:] != ["installed"]:
            continue
        source, _, source_version = para.get("Source", para["Package"]).partition(" ")
        found.append(Installed(para["Package"], para["Version"], para["Architecture"], source,
                               source_version.strip("()") or para["Version"]))
    return found


def security_advisories(rootfs_tar: Path) -> dict[str, dict[str, str]]:
    """CVE ids fixed in bookworm-security after the installed versions, per source package.

    For each source package with a newer version in bookworm-security, one of its binaries
    is fetched with ``apt-get download`` and its ``changelog.Debian.gz`` parsed: every CVE
    named in an entry newer than the installed source version is fixed in the oldest such
    entry's version (scanning.md §9a).
    """
    status = read_member(rootfs_tar, "var/lib/dpkg/status")
    target = rootfs_tar.with_name(rootfs_tar.stem + f"-{_key(status.decode())}-advisories.json")
    with _locked(target):
        if not target.exists():
            advisories = _harvest(installed_packages(status))
            target.write_text(json.dumps(advisories, indent=1, sort_keys=True))
    return json.loads(target.read_text())


def _harvest(installed: list[Installed]) -> dict[str, dict[str, str]]:
    from debian.debian_support import Version

    apt = _SecurityApt(cache_root() / "apt-security")
    available = apt.available()
    newer: dict[str, list[tuple[Installed, str]]] = {}
    for pkg in installed:
        candidate = available.get((pkg.package, pkg.architecture))
        if candidate and Version(candidate) > Version(pkg.version):
            newer.setdefault(pkg.source, []).append((pkg, candidate))
    advisories: dict[str, dict[str, str]] = {}
    for source, binaries in sorted(newer.items()):
        # The binary named like its source usually carries the changelog; docs of others
        # are often symlinks to it. Try in that order until one has a changelog.
        binaries.sort(key=lambda item: (item[0].package != source, item[0].package))
        for pkg, version in binaries:
            changelog = apt.changelog(pkg.package, version)
            if changelog is not None:
                fixes = _fixes_after(changelog, pkg.source_version)
                if fixes:
                    advisories[source] = fixes
                break
    return advisories


def _fixes_after(changelog: bytes, installed_source_version: str) -> dict[str, str]:
    from debian.changelog import Changelog
    from debian.debian_support import Version

    installed = Version(installed_source_version)
    fixes: dict[str, str] = {}
    for block in Changelog(changelog, strict=False):
        if block.version is None or Version(str(block.version)) <= installed:
            continue
        for cve in _CVE.findall("\n".join(block.changes())):
            current = fixes.get(cve)
            if current is None or Version(str(block.version)) < Version(current):
                fixes[cve] = str(block.version)
    return fixes


class _SecurityApt:
    """apt with its own lists and archives for bookworm-security only; the host's apt
    configuration and state are neither used nor changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.debs = root / "debs"
        for sub in ("lists/partial", "archives/partial", "debs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "sources.list").write_text(
            f"deb [signed-by={KEYRING}] {SECURITY_MIRROR} bookworm-security main\n")
        (root / "status").touch()
        self.options = [
            "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::State::status={root / 'status'}",
            "-o", f"Dir::Cache={root}", "-o", f"Dir::Cache::archives={root / 'archives'}",
            "-o", "Acquire::Languages=none", "-o", "APT::Get::List-Cleanup=false",
        ]

    def available(self) -> dict[tuple[str, str], str]:
        """(package, architecture) -> version in bookworm-security."""
        from debian.deb822 import Deb822

        _run(["apt-get", *self.options, "-q", "update"])
        dump = _run(["apt-cache", *self.options, "dumpavail"])
        return {(p["Package"], p["Architecture"]): p["Version"]
                for p in Deb822.iter_paragraphs(io.StringIO(dump))}

    def changelog(self, package: str, version: str) -> bytes | None:
        """``changelog.Debian.gz`` of one binary package version, decompressed."""
        debs = list(self.debs.glob(f"{package}_*.deb"))
        wanted = [d for d in debs if _deb_version(d) == version]
        if not wanted:
            _run(["apt-get", *self.options, "-q", "download", f"{package}={version}"],
                 cwd=self.debs)
            wanted = [d for d in self.debs.glob(f"{package}_*.deb")
                      if _deb_version(d) == version]
        tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(wanted[0])],
                                   capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            for member in tar:
                if member.isfile() and re.fullmatch(
                        r"(\./)?usr/share/doc/[^/]+/changelog\.Debian\.gz", member.name):
                    stream = tar.extractfile(member)
                    assert stream is not None
                    return gzip.decompress(stream.read())
        return None


def _deb_version(path: Path) -> str:
    # apt-get download names files <name>_<version with ':' as %3a>_<arch>.deb
    return path.name.split("_")[1].replace("%3a", ":")


# -- (c) OCI layouts: layers, whiteouts, wheels ------------------------------------------


@dataclass(frozen=True)
class OciImage:
    layout_dir: Path
    manifest_digest: str

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return self.layout_dir / "blobs" / algorithm / hex_digest

    @property
    def manifest_bytes(self) -> bytes:
        return self.blob_path(self.manifest_digest).read_bytes()


def build_image(dest: Path, layers: Sequence[Path | Layer]) -> OciImage:
    """Write an OCI image layout (linux/amd64) whose layers are, bottom first, uncompressed
    tar files (gzip'd here at level 1, streamed) or prebuilt ``Layer``s; return it.

    Cached by ``dest``: an existing complete layout is returned as is.
    """
    marker = dest / "manifest-digest"
    if marker.exists():
        return OciImage(dest, marker.read_text())
    if dest.exists():
        shutil.rmtree(dest)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descriptors, diff_ids = [], []
    for layer in layers:
        if isinstance(layer, Layer):
            digest, size, diff_id = _write_blob(blobs, layer.data), layer.size, layer.diff_id
        else:
            digest, size, diff_id = _gzip_into(blobs, layer)
        descriptors.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size})
        diff_ids.append(diff_id)
    config = canonical_json({"architecture": "amd64", "os": "linux",
                             "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _write_blob(blobs, config),
                   "size": len(config)},
        "layers": descriptors})
    manifest_digest = _write_blob(blobs, manifest)
    (dest / "index.json").write_bytes(canonical_json({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    marker.write_text(manifest_digest)
    return OciImage(dest, manifest_digest)


def _write_blob(blobs: Path, data: bytes) -> str:
    hex_digest = hashlib.sha256(data).hexdigest()
    (blobs / hex_digest).write_bytes(data)
    return "sha256:" + hex_digest


class _HashingWriter(io.RawIOBase):
    def __init__(self, out: io.BufferedWriter) -> None:
        self.out, self.hash, self.size = out, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)


def _gzip_into(blobs: Path, tar_path: Path) -> tuple[str, int, str]:
    """Stream ``tar_path`` through gzip -1 into ``blobs``; return (digest, size, diff_id)."""
    partial = blobs / "layer.partial"
    diff = hashlib.sha256()
    with partial.open("wb") as raw:
        sink = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0) as gz, \
                tar_path.open("rb") as source:
            while chunk := source.read(1 << 20):
                diff.update(chunk)
                gz.write(chunk)
    hex_digest = sink.hash.hexdigest()
    os.replace(partial, blobs / hex_digest)
    return "sha256:" + hex_digest, sink.size, "sha256:" + diff.hexdigest()


def wheels(*requirements: str) -> list[Path]:
    """Wheels from PyPI (``pip download --no-deps --only-binary=:all:``), cached."""
    target = cache_root() / "wheels" / _key(sorted(requirements))
    with _locked(target):
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            _run(["python3", "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                  "--no-deps", "--only-binary=:all:", "-d", str(partial), *requirements])
            os.replace(partial, target)
    return sorted(target.glob("*.whl"))


def wheel_entries(wheel: Path, site_packages: str = SITE_PACKAGES) -> list[TarEntry]:
    """A wheel unpacked as pip would install it: its files under ``site_packages``."""
    with zipfile.ZipFile(wheel) as archive:
        return [TarEntry(f"{site_packages}/{name}", data=archive.read(name))
                for name in archive.namelist() if not name.endswith("/")]


def npm_package(name: str, version: str, root: str = "app/node_modules") -> TarEntry:
    """An installed npm package as Trivy finds it: ``node_modules/<name>/package.json``."""
    body = json.dumps({"name": name, "version": version, "license": "MIT"}).encode()
    return TarEntry(f"{root}/{name}/package.json", data=body)


def dist_info(name: str, version: str, site_packages: str = SITE_PACKAGES) -> TarEntry:
    """A minimal installed-distribution record (``*.dist-info/METADATA``)."""
    body = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    return TarEntry(f"{site_packages}/{name}-{version}.dist-info/METADATA", data=body)
