"""TrivyScanner with the real Trivy 0.76 on real packages and fixture DBs (no network)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scanner import ScanError, ScanStatus, ScanTarget, TrivyScanner, install_db
from scanner.trivy import NO_DB, NOT_INSTALLED, UNSUPPORTED_DESCRIPTION
from tests.scanner import fixtures
from tests.scanner.conftest import bare_trivy, db_layer, report_keys
from tests.support import debian
from tests.support.images import TarEntry, tar_layer

SITE = debian.SITE_PACKAGES


def keys(report) -> set[tuple[str, str, str]]:
    return {(f.vulnerability_id, f.package_name, f.installed_version) for f in report.findings}


def sbom_packages(sbom: bytes) -> dict[str, str]:
    document = json.loads(sbom)
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"].startswith("1.")
    assert not document.get("vulnerabilities")  # an inventory; findings live in the scan
    return {c["name"]: c["version"] for c in document["components"] if c["type"] == "library"}


async def test_old_wheels_find_the_pip_advisories_as_bare_trivy_does(
        tmp_path, trivy, make_scanner, scan_target, wheel_image, fixture_db):
    scanner = make_scanner()
    report = await scanner.scan(scan_target(wheel_image))
    assert report.status is ScanStatus.COMPLETE
    assert keys(report) == fixtures.WHEEL_FINDINGS
    bare, _ = bare_trivy(trivy, wheel_image, fixture_db, tmp_path)
    assert keys(report) == report_keys(bare)
    assert (report.scanner_name, report.scanner_version) == ("Trivy", "0.76.0")
    assert report.db_updated_at == fixtures.UPDATED_AT
    assert (report.os_family, report.os_name) == (None, None)
    werkzeug = next(f for f in report.findings if f.vulnerability_id == "CVE-2019-14806")
    assert (werkzeug.severity, werkzeug.cvss.v3_score, werkzeug.fixed_version) == \
        ("HIGH", 7.5, "0.15.3")
    assert werkzeug.package_type == "python"
    assert werkzeug.package_path == f"{SITE}/Werkzeug-0.15.2.dist-info/METADATA"
    assert werkzeug.layer_digest == json.loads(wheel_image.manifest_bytes)["layers"][0]["digest"]
    assert sbom_packages(report.sbom) == {"Werkzeug": "0.15.2", "urllib3": "1.26.4",
                                          "Jinja2": "2.10"}


async def test_os_and_language_packages_in_one_image(make_scanner, scan_target, mixed_image):
    report = await make_scanner().scan(scan_target(mixed_image))
    assert report.status is ScanStatus.COMPLETE
    assert (report.os_family, report.os_name) == ("debian", "12.8")
    assert report.package_count == 5
    os_findings = {(f.vulnerability_id, f.package_name, f.fixed_version, f.status)
                   for f in report.findings if f.package_type == "os"}
    assert os_findings == {
        ("CVE-2024-13176", "openssl", "3.0.15-1~deb12u2", "fixed"),
        ("CVE-2024-13176", "libssl3", "3.0.15-1~deb12u2", "fixed"),
        ("CVE-2024-2511", "openssl", None, "will_not_fix"),
        ("CVE-2024-2511", "libssl3", None, "will_not_fix"),
    }


async def test_whiteouts_hide_deleted_and_replaced_packages(make_scanner, scan_target,
                                                            whiteout_image):
    report = await make_scanner().scan(scan_target(whiteout_image))
    assert report.status is ScanStatus.COMPLETE
    found = {(f.package_name, f.vulnerability_id) for f in report.findings}
    assert ("Werkzeug", "CVE-2019-14806") in found
    assert ("lodash", "CVE-2019-10744") in found
    assert not any(name in ("setuptools", "jquery") for name, _ in found)
    packages = sbom_packages(report.sbom)
    assert "setuptools" not in packages
    assert packages["jquery"] == "3.5.0" and packages["lodash"] == "4.17.4"


@pytest.mark.parametrize("name", ["busybox", "empty-layer", "unknown-os"])
async def test_an_image_with_nothing_to_match_is_unsupported_like_ecr(
        make_scanner, scan_target, unscannable_images, name):
    report = await make_scanner().scan(scan_target(unscannable_images[name]))
    assert (report.status, report.description, report.findings) == \
        (ScanStatus.UNSUPPORTED_IMAGE, UNSUPPORTED_DESCRIPTION, ())
    assert report.db_updated_at == fixtures.UPDATED_AT


async def test_a_debian_image_without_vulnerable_packages_is_complete_and_clean(
        tmp_path, make_scanner, scan_target):
    status = (b"Package: bash\nStatus: install ok installed\nArchitecture: amd64\n"
              b"Version: 5.2.15-2+b7\n")
    image = debian.build_image(tmp_path / "oci", [fixtures.debian_files_layer(status)])
    report = await make_scanner().scan(scan_target(image))
    assert (report.status, report.findings, report.os_family) == \
        (ScanStatus.COMPLETE, (), "debian")


async def test_a_jar_never_aborts_the_scan(tmp_path, make_scanner, scan_target):
    """Without a Java DB Trivy refuses any image holding a jar; the scanner brings an empty
    one, and the jar is identified from its pom.properties."""
    jar = io.BytesIO()
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("META-INF/maven/org.example/demo/pom.properties",
                         "groupId=org.example\nartifactId=demo\nversion=1.2.3\n")
    image = debian.build_image(tmp_path / "oci", [tar_layer([
        TarEntry("app", is_dir=True), TarEntry("app/demo-1.2.3.jar", data=jar.getvalue())])])
    report = await make_scanner().scan(scan_target(image))
    assert report.status is ScanStatus.COMPLETE
    assert sbom_packages(report.sbom) == {"demo": "1.2.3"}  # CycloneDX: group org.example


async def test_without_a_db_the_scan_fails_with_the_fix(make_scanner, scan_target,
                                                        wheel_image):
    report = await make_scanner(db=None).scan(scan_target(wheel_image))
    assert (report.status, report.description) == (ScanStatus.FAILED, NO_DB)
    assert report.scanner_version == "0.76.0" and report.db_updated_at is None


async def test_a_damaged_installed_db_fails_the_scan(make_scanner, scan_target, wheel_image):
    scanner = make_scanner()
    (scanner.cache_dir / "db" / "trivy.db").write_bytes(b"\0" * 8192)
    report = await scanner.scan(scan_target(wheel_image))
    assert report.status is ScanStatus.FAILED
    assert report.description.startswith("vulnerability database invalid")


async def test_without_trivy_the_scan_fails_and_says_how_to_install(tmp_path, scan_target,
                                                                    wheel_image):
    scanner = TrivyScanner(tmp_path / "no-such-trivy", cache_dir=tmp_path / "cache")
    report = await scanner.scan(scan_target(wheel_image))
    assert (report.status, report.description) == (ScanStatus.FAILED, NOT_INSTALLED)
    with pytest.raises(ScanError) as raised:
        await scanner.version()
    assert not raised.value.retryable


async def test_a_missing_layout_is_a_permanent_error(tmp_path, make_scanner, wheel_image):
    with pytest.raises(ScanError) as raised:
        await make_scanner().scan(ScanTarget(tmp_path / "gone", wheel_image.manifest_digest))
    assert not raised.value.retryable


async def test_trivys_own_timeout_is_retryable(make_scanner, scan_target, whiteout_image):
    scanner = make_scanner(timeout=0.001)
    with pytest.raises(ScanError) as raised:
        await scanner.scan(scan_target(whiteout_image))
    assert raised.value.retryable


@pytest.mark.parametrize("ending", ["deadline", "cancelled"])
async def test_a_hung_scanner_is_killed(tmp_path, scan_target, wheel_image, fixture_db,
                                        ending):
    """A stand-in binary that answers --version and then hangs: the hard timeout, or the
    worker cancelling the scan, kills it; no scanner process outlives its scan."""
    pid_file = tmp_path / "pid"
    fake = tmp_path / "trivy"
    fake.write_text("#!/bin/sh\n"
                    'if [ "$1" = "--version" ]; then echo "Version: 0.76.0"; exit 0; fi\n'
                    f'echo $$ > {pid_file}\nexec sleep 60\n')
    fake.chmod(0o755)
    install_db(fixture_db, tmp_path / "cache")
    scanner = TrivyScanner(fake, cache_dir=tmp_path / "cache", timeout=0.5, kill_grace=0.5)
    scan = asyncio.create_task(scanner.scan(scan_target(wheel_image)))
    if ending == "deadline":
        with pytest.raises(ScanError) as raised:
            await asyncio.wait_for(scan, 30)
        assert raised.value.retryable
    else:
        while not pid_file.exists() or not pid_file.read_text():
            await asyncio.sleep(0.02)
        scan.cancel()
        with pytest.raises(asyncio.CancelledError):
            await scan
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_workers_share_one_installed_db(tmp_path, trivy, scan_target, wheel_image,
                                              fixture_db):
    shared = tmp_path / "shared"
    install_db(fixture_db, shared)
    workers = [TrivyScanner(trivy, cache_dir=tmp_path / f"worker-{i}", db_dir=shared)
               for i in range(2)]
    reports = await asyncio.gather(*(w.scan(scan_target(wheel_image)) for w in workers))
    assert [keys(r) for r in reports] == [fixtures.WHEEL_FINDINGS] * 2
    assert all((w.cache_dir / "db").is_symlink() for w in workers)


async def test_a_new_db_changes_the_next_scan(tmp_path, make_scanner, scan_target,
                                              wheel_image):
    """What CONTINUOUS_SCAN relies on: after install_db, the same image yields the new
    advisories and the new UpdatedAt."""
    scanner = make_scanner()
    before = await scanner.scan(scan_target(wheel_image))
    extra = {**fixtures.PIP_ADVISORIES,
             "jinja2": {**fixtures.PIP_ADVISORIES["jinja2"],
                        "CVE-2020-28493": fixtures.pip("< 2.11.3", "2.11.3")}}
    later = datetime(2026, 12, 1, tzinfo=timezone.utc)
    install_db(db_layer(tmp_path / "db2", fixtures.buckets(pip_advisories=extra), later),
               scanner.cache_dir)
    after = await scanner.scan(scan_target(wheel_image))
    assert keys(after) - keys(before) == {("CVE-2020-28493", "Jinja2", "2.10")}
    assert (before.db_updated_at, after.db_updated_at) == (fixtures.UPDATED_AT, later)


async def test_relative_paths_scan_like_absolute_ones(tmp_path, trivy, scan_target, wheel_image,
                                                      fixture_db, monkeypatch):
    """The default data dir is ./berth-data: Trivy runs in a scratch directory, so relative
    cache, DB and layout paths once made every scan fail with "--skip-db-update cannot be
    specified on the first run"."""
    install_db(fixture_db, tmp_path / "shared")
    target = scan_target(wheel_image)
    monkeypatch.chdir(tmp_path)
    relative = dataclasses.replace(target, layout_dir=target.layout_dir.relative_to(tmp_path))
    scanner = TrivyScanner(trivy, cache_dir=Path("worker-cache"), db_dir=Path("shared"))
    report = await scanner.scan(relative)
    assert report.status is ScanStatus.COMPLETE, report.description
    assert keys(report) == fixtures.WHEEL_FINDINGS
