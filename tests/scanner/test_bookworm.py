"""A real Debian bookworm image (mmdebstrap, main only) against advisories harvested from
bookworm-security changelogs: Berth's scan equals a bare ``trivy image`` with the same DB.

Cold, this builds the rootfs and harvests advisories from Debian's apt repository (about
half a minute); afterwards both come from the test cache (tests/support/debian.py).
"""

from __future__ import annotations

import json
import time

import pytest

from scanner import ScanStatus, severity_counts
from tests.scanner import fixtures
from tests.scanner.conftest import bare_trivy, db_layer, report_keys
from tests.support import debian
from tests.support.trivydb import DEBIAN_SOURCE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bookworm_db(tmp_path_factory, bookworm) -> bytes:
    packages = {source: {cve: {"FixedVersion": fixed} for cve, fixed in cves.items()}
                for source, cves in bookworm.advisories.items()}
    return db_layer(tmp_path_factory.mktemp("bookworm-db"),
                    {"debian 12": packages, "data-source": {"debian 12": DEBIAN_SOURCE}})


async def test_findings_equal_a_bare_trivy_run_with_the_same_db(
        tmp_path, trivy, bookworm, bookworm_db, make_scanner, scan_target, record_property):
    image, advisories = bookworm.image, bookworm.advisories
    assert advisories, "bookworm-security fixed nothing in this image: harvest is broken"
    scanner = make_scanner(db=bookworm_db)
    await scanner.version()  # asked once per worker, not part of a scan
    started = time.monotonic()
    report = await scanner.scan(scan_target(image))
    ours = time.monotonic() - started
    bare, bare_seconds = bare_trivy(trivy, image, bookworm_db, tmp_path)

    assert report.status is ScanStatus.COMPLETE
    assert report.os_family == "debian" and report.os_name.startswith("12.")
    found = {(f.vulnerability_id, f.package_name, f.installed_version) for f in report.findings}
    assert found == report_keys(bare)
    assert {f.package_type for f in report.findings} == {"os"}
    assert all(f.fixed_version and f.status == "fixed" for f in report.findings)
    # Every finding is a harvested (source, CVE) pair; every harvested source shows up.
    sources = {p["Name"]: p.get("SrcName", p["Name"])
               for result in bare["Results"] for p in result.get("Packages", [])}
    assert {sources[f.package_name] for f in report.findings} == set(advisories)
    assert severity_counts(report.findings) == {"UNKNOWN": len(report.findings)}
    assert report.db_updated_at == fixtures.UPDATED_AT

    record_property("scan_seconds", round(ours, 3))
    record_property("bare_trivy_seconds", round(bare_seconds, 3))
    print(f"\nbookworm: {len(report.findings)} findings, {report.package_count} packages; "
          f"Berth scan {ours:.2f}s (layout + trivy + SBOM) vs bare trivy {bare_seconds:.2f}s")
    # A loose guard against gross regressions; bench/ holds the real 1.5x budget.
    assert ours < 3 * bare_seconds + 2


async def test_the_sbom_lists_every_installed_package(bookworm, bookworm_db, make_scanner,
                                                      scan_target):
    report = await make_scanner(db=bookworm_db).scan(scan_target(bookworm.image))
    sbom = json.loads(report.sbom)
    assert sbom["bomFormat"] == "CycloneDX"
    debs = {c["name"] for c in sbom["components"]
            if c.get("purl", "").startswith("pkg:deb/debian/")}
    installed = debian.installed_packages(
        debian.read_member(bookworm.rootfs, "var/lib/dpkg/status"))
    assert len(installed) == report.package_count
    assert {pkg.package for pkg in installed} <= debs
