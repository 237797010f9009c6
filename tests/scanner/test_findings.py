"""parse_trivy_report and the finding model, against a report captured from the real Trivy
0.76 (tests/scanner/data/trivy-report-mixed.json: a Debian 12 dpkg status with openssl and
libssl3, plus the werkzeug/urllib3/jinja2 wheels, scanned with the fixture DB)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from scanner import (Cvss, Finding, ReportError, fixable_count, parse_trivy_report,
                     severity_counts)

REPORT = json.loads((Path(__file__).parent / "data" / "trivy-report-mixed.json").read_text())
SITE = "usr/local/lib/python3.11/site-packages"

# (id, package, type, installed, fixed, status, severity), most severe first.
EXPECTED = [
    ("CVE-2019-14806", "Werkzeug", "python", "0.15.2", "0.15.3", "fixed", "HIGH"),
    ("CVE-2024-2511", "libssl3", "os", "3.0.15-1~deb12u1", None, "will_not_fix", "LOW"),
    ("CVE-2024-2511", "openssl", "os", "3.0.15-1~deb12u1", None, "will_not_fix", "LOW"),
    ("CVE-2019-10906", "Jinja2", "python", "2.10", "2.10.1", "fixed", "UNKNOWN"),
    ("CVE-2021-33503", "urllib3", "python", "1.26.4", "1.26.5", "fixed", "UNKNOWN"),
    ("CVE-2023-25577", "Werkzeug", "python", "0.15.2", "2.2.3", "fixed", "UNKNOWN"),
    ("CVE-2023-43804", "urllib3", "python", "1.26.4", "1.26.17", "fixed", "UNKNOWN"),
    ("CVE-2024-13176", "libssl3", "os", "3.0.15-1~deb12u1", "3.0.15-1~deb12u2", "fixed",
     "UNKNOWN"),
    ("CVE-2024-13176", "openssl", "os", "3.0.15-1~deb12u1", "3.0.15-1~deb12u2", "fixed",
     "UNKNOWN"),
]


def test_every_result_is_flattened_into_findings_most_severe_first():
    parsed = parse_trivy_report(REPORT)
    assert [(f.vulnerability_id, f.package_name, f.package_type, f.installed_version,
             f.fixed_version, f.status, f.severity) for f in parsed.findings] == EXPECTED
    assert (parsed.os_family, parsed.os_name) == ("debian", "12.8")
    assert parsed.package_count == 5  # openssl, libssl3 and three wheels
    assert parsed.results == (("os-pkgs", "debian"), ("lang-pkgs", "python-pkg"))


def test_a_language_finding_carries_everything_the_apis_show():
    werkzeug = parse_trivy_report(REPORT).findings[0]
    layer = REPORT["Metadata"]["Layers"][1]
    assert werkzeug == Finding(
        vulnerability_id="CVE-2019-14806", aliases=(), package_name="Werkzeug",
        package_type="python", installed_version="0.15.2", fixed_version="0.15.3",
        status="fixed", severity="HIGH",
        cvss=Cvss(7.5, "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "nvd"),
        title="python-werkzeug: insufficient debugger PIN randomness vulnerability",
        description="Pallets Werkzeug before 0.15.3, when used with Docker, has insufficient "
                    "debugger PIN randomness because Docker containers share the same "
                    "machine id.",
        primary_url="https://avd.aquasec.com/nvd/cve-2019-14806",
        references=("https://github.com/advisories/GHSA-gq9m-qvpx-68hc",
                    "https://nvd.nist.gov/vuln/detail/CVE-2019-14806"),
        package_path=f"{SITE}/Werkzeug-0.15.2.dist-info/METADATA",
        layer_digest=layer["Digest"], layer_diff_id=layer["DiffID"],
        purl="pkg:pypi/werkzeug@0.15.2", data_source="ghsa")


def test_an_os_finding_without_vulnerability_details_keeps_its_gaps_empty():
    finding = next(f for f in parse_trivy_report(REPORT).findings
                   if f.vulnerability_id == "CVE-2024-2511" and f.package_name == "openssl")
    assert finding.cvss == Cvss(None, None, None)
    assert (finding.title, finding.description, finding.primary_url) == ("", "", None)
    assert finding.package_path is None
    assert finding.purl.startswith("pkg:deb/debian/openssl@3.0.15-1~deb12u1")
    assert finding.data_source == "debian"
    assert not finding.fixable


CVSS_CASES = [
    ("the severity source's rating wins", "ghsa",
     {"nvd": {"V3Score": 7.5}, "ghsa": {"V3Score": 5.3, "V3Vector": "V"}}, Cvss(5.3, "V", "ghsa")),
    ("then NVD", "debian", {"redhat": {"V3Score": 6.0}, "nvd": {"V3Score": 7.5}},
     Cvss(7.5, None, "nvd")),
    ("then the first other source by name", None,
     {"redhat": {"V3Score": 6.0}, "bitnami": {"V3Score": 6.5}}, Cvss(6.5, None, "bitnami")),
    ("sources with only CVSS v2 are skipped", None,
     {"nvd": {"V2Score": 5.0}, "redhat": {"V3Score": 6.0}}, Cvss(6.0, None, "redhat")),
    ("no rating at all", None, {}, Cvss(None, None, None)),
]


@pytest.mark.parametrize("severity_source, ratings, expected",
                         [c[1:] for c in CVSS_CASES], ids=[c[0] for c in CVSS_CASES])
def test_one_cvss_v3_rating_is_chosen(severity_source, ratings, expected):
    report = _report([_vuln(SeveritySource=severity_source, CVSS=ratings)])
    assert parse_trivy_report(report).findings[0].cvss == expected


def test_empty_fixed_version_is_none_and_unknown_severity_is_kept():
    report = _report([_vuln(FixedVersion="", Severity="UNKNOWN"),
                      _vuln(VulnerabilityID="CVE-2", FixedVersion=None, Severity="BOGUS"),
                      _vuln(VulnerabilityID="CVE-3", FixedVersion=None, Severity=None)])
    findings = parse_trivy_report(report).findings
    assert [(f.fixed_version, f.severity) for f in findings] == [(None, "UNKNOWN")] * 3


def test_a_package_listed_under_two_targets_is_one_finding():
    report = _report([_vuln()])
    report["Results"].append(copy.deepcopy(report["Results"][0]))
    assert len(parse_trivy_report(report).findings) == 1


@pytest.mark.parametrize("result_type, package_type", [
    ("python-pkg", "python"), ("node-pkg", "npm"), ("gobinary", "go"), ("jar", "jar"),
    ("rustbinary", "rust"), ("gemspec", "ruby"), ("something-new", "something-new")])
def test_language_result_types_map_to_package_types(result_type, package_type):
    report = _report([_vuln()], result_class="lang-pkgs", result_type=result_type)
    assert parse_trivy_report(report).findings[0].package_type == package_type


@pytest.mark.parametrize("report", [
    {"SchemaVersion": 1, "Results": []},
    {"Results": []},
    {"SchemaVersion": 2, "Results": {"not": "a list"}},
    {"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"PkgName": "x"}]}]},
    {"SchemaVersion": 2, "Metadata": [], "Results": []},
], ids=["schema-1", "no-schema", "results-object", "no-vulnerability-id", "metadata-list"])
def test_what_is_not_a_schema_2_report_is_rejected(report):
    with pytest.raises(ReportError):
        parse_trivy_report(report)


def test_a_report_without_results_has_no_findings():
    parsed = parse_trivy_report({"SchemaVersion": 2, "Metadata": {}})
    assert (parsed.findings, parsed.results, parsed.os_family) == ((), (), None)


def test_severity_counts_list_only_present_levels_most_severe_first():
    findings = parse_trivy_report(REPORT).findings
    counts = severity_counts(findings)
    assert counts == {"HIGH": 1, "LOW": 2, "UNKNOWN": 6}
    assert list(counts) == ["HIGH", "LOW", "UNKNOWN"]
    assert fixable_count(findings) == 7


def test_findings_survive_a_json_round_trip():
    for finding in parse_trivy_report(REPORT).findings:
        assert Finding.from_json(json.loads(json.dumps(finding.to_json()))) == finding


def _vuln(**fields) -> dict:
    base = {"VulnerabilityID": "CVE-1", "PkgName": "pkg", "InstalledVersion": "1.0",
            "FixedVersion": "1.1", "Status": "fixed", "Severity": "HIGH"}
    return {**base, **fields}


def _report(vulns: list[dict], *, result_class: str = "os-pkgs",
            result_type: str = "debian") -> dict:
    return {"SchemaVersion": 2, "Metadata": {"OS": {"Family": "debian", "Name": "12.8"}},
            "Results": [{"Target": "t", "Class": result_class, "Type": result_type,
                         "Vulnerabilities": vulns}]}
