"""The Scanner protocol's contract, run against every implementation (Trivy and the fake)."""

from __future__ import annotations

import pytest

from scanner import (Cvss, Finding, Scanner, ScanError, ScanReport, ScanStatus, ScanTarget,
                     severity_counts)
from tests.scanner import fixtures
from tests.scanner.fakes import StaticScanner


def _static_report(digest: str) -> dict[str, ScanReport]:
    finding = Finding("CVE-2019-14806", (), "Werkzeug", "python", "0.15.2", "0.15.3", "fixed",
                      "HIGH", Cvss(7.5, None, "nvd"), "", "", None, (), None, None, None, None,
                      "ghsa")
    return {digest: ScanReport(ScanStatus.COMPLETE, "The scan was completed successfully.",
                               (finding,), None, None, fixtures.UPDATED_AT, "static", "1.0.0")}


@pytest.fixture(params=["trivy", "static"])
def scanner(request, make_scanner, wheel_image) -> Scanner:
    if request.param == "trivy":
        return make_scanner()
    return StaticScanner(_static_report(wheel_image.manifest_digest))


async def test_it_is_a_scanner_with_a_version(scanner):
    assert isinstance(scanner, Scanner)
    version = await scanner.version()
    assert isinstance(version, str) and version


async def test_a_scan_reports_sorted_findings_in_the_normalised_model(scanner, scan_target,
                                                                      wheel_image):
    report = await scanner.scan(scan_target(wheel_image))
    assert report.status is ScanStatus.COMPLETE
    assert (report.scanner_name, report.scanner_version) == (scanner.name,
                                                             await scanner.version())
    assert report.findings and all(isinstance(f, Finding) for f in report.findings)
    assert list(severity_counts(report.findings))[0] == report.findings[0].severity
    assert report.db_updated_at == fixtures.UPDATED_AT


async def test_an_unreadable_target_is_a_permanent_error(scanner, tmp_path, wheel_image):
    with pytest.raises(ScanError) as raised:
        await scanner.scan(ScanTarget(tmp_path / "missing", wheel_image.manifest_digest))
    assert raised.value.retryable is False
