"""The normalised finding model and the parser of Trivy's JSON report (schema 2).

One ``Finding`` per (vulnerability, package, installed version, path) — the union of what ECR
basic and enhanced findings, Harbor and zot show (scanning.md §11.4), all derived from Trivy's
``Results[].Vulnerabilities[]`` (§3). The parser is pure: it takes the decoded JSON and never
touches the filesystem, so the worker, tests and a future second scanner share it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

# Most severe first; ECR's order. Trivy never emits INFORMATIONAL; UNKNOWN maps to ECR's
# UNDEFINED at the API edge (§11.4), not here.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

# Trivy's Result.Type for language packages -> Berth's package_type. OS results are "os"
# whatever the distribution; unknown language types pass through unchanged.
_LANGUAGE_TYPES = {
    "python-pkg": "python", "pip": "python", "pipenv": "python", "poetry": "python",
    "uv": "python", "conda-pkg": "python",
    "node-pkg": "npm", "npm": "npm", "yarn": "npm", "pnpm": "npm", "bun": "npm",
    "gobinary": "go", "gomod": "go",
    "jar": "jar", "pom": "jar", "gradle": "jar", "sbt": "jar",
    "rustbinary": "rust", "cargo": "rust",
    "gemspec": "ruby", "bundler": "ruby",
    "nuget": "nuget", "dotnet-core": "nuget", "packages-props": "nuget",
    "composer": "php", "composer-vendor": "php",
}


class ReportError(ValueError):
    """The JSON is not a Trivy schema-2 report (wrong SchemaVersion, wrong shapes)."""


@dataclass(frozen=True, slots=True)
class Cvss:
    """The CVSS v3 rating Berth shows for a finding, and which source rated it."""

    v3_score: float | None
    v3_vector: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class Finding:
    vulnerability_id: str
    aliases: tuple[str, ...]  # vendor ids: DSA-…, RHSA-…, GHSA-…
    package_name: str
    package_type: str  # os | python | npm | go | jar | rust | …
    installed_version: str
    fixed_version: str | None  # None when no fix exists; may be a comma list ("2.0.6, 1.26.17")
    status: str  # fixed | affected | will_not_fix | … (trivy-db types/status.go)
    severity: str  # one of SEVERITIES
    cvss: Cvss
    title: str
    description: str
    primary_url: str | None
    references: tuple[str, ...]
    package_path: str | None  # language packages: the file the package was found in
    layer_digest: str | None  # compressed layer digest (absent for docker-archive input)
    layer_diff_id: str | None
    purl: str | None
    data_source: str | None  # the advisory source's id: "debian", "ghsa", …

    @property
    def fixable(self) -> bool:
        return self.fixed_version is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists); ``from_json`` reverses it."""
        return asdict(self) | {"aliases": list(self.aliases),
                               "references": list(self.references)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Finding":
        """Rebuild a finding from ``to_json`` output.

        Raises:
            KeyError, TypeError: ``data`` is not a ``to_json`` document.
        """
        values = dict(data)
        values["cvss"] = Cvss(**values["cvss"])
        values["aliases"] = tuple(values["aliases"])
        values["references"] = tuple(values["references"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ParsedReport:
    findings: tuple[Finding, ...]
    os_family: str | None
    os_name: str | None
    package_count: int  # packages Trivy found (OS and language), vulnerable or not
    results: tuple[tuple[str, str], ...] = field(default=())  # (Class, Type) per Result


def parse_trivy_report(report: Mapping[str, Any]) -> ParsedReport:
    """Flatten a Trivy JSON report into findings, sorted most severe first.

    Every ``Results[].Vulnerabilities[]`` entry of every target becomes a finding; entries
    with the same (id, package, version, path, type) collapse into one (Trivy can list one
    package under two targets). Severity UNKNOWN is kept; an empty ``FixedVersion`` becomes
    None.

    Raises:
        ReportError: ``SchemaVersion`` is not 2, or a required field has the wrong type.
    """
    if not isinstance(report, Mapping) or report.get("SchemaVersion") != 2:
        raise ReportError("not a Trivy report with SchemaVersion 2")
    os_info = _mapping(_mapping(report.get("Metadata")).get("OS"))
    findings: dict[tuple, Finding] = {}
    package_count = 0
    kinds: list[tuple[str, str]] = []
    for result in _list(report.get("Results"), "Results"):
        result = _mapping(result)
        result_class, result_type = str(result.get("Class", "")), str(result.get("Type", ""))
        kinds.append((result_class, result_type))
        package_count += len(_list(result.get("Packages"), "Packages"))
        package_type = "os" if result_class == "os-pkgs" else _LANGUAGE_TYPES.get(
            result_type, result_type)
        for vuln in _list(result.get("Vulnerabilities"), "Vulnerabilities"):
            finding = _finding(_mapping(vuln), package_type)
            key = (finding.vulnerability_id, finding.package_name, finding.installed_version,
                   finding.package_path, finding.package_type)
            findings.setdefault(key, finding)
    ordered = sorted(findings.values(), key=_sort_key)
    return ParsedReport(
        findings=tuple(ordered),
        os_family=os_info.get("Family") or None,
        os_name=os_info.get("Name") or None,
        package_count=package_count,
        results=tuple(kinds),
    )


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per severity, non-zero levels only, most severe first (ECR's
    ``findingSeverityCounts`` omits empty levels)."""
    counts = Counter(f.severity for f in findings)
    return {level: counts[level] for level in SEVERITIES if counts[level]}


def fixable_count(findings: Iterable[Finding]) -> int:
    return sum(1 for f in findings if f.fixable)


def _finding(vuln: Mapping[str, Any], package_type: str) -> Finding:
    try:
        vulnerability_id = str(vuln["VulnerabilityID"])
        package_name = str(vuln["PkgName"])
    except KeyError as exc:
        raise ReportError(f"vulnerability without {exc.args[0]}") from None
    layer = _mapping(vuln.get("Layer"))
    identifier = _mapping(vuln.get("PkgIdentifier"))
    severity = str(vuln.get("Severity") or "UNKNOWN").upper()
    return Finding(
        vulnerability_id=vulnerability_id,
        aliases=tuple(str(v) for v in _list(vuln.get("VendorIDs"), "VendorIDs")),
        package_name=package_name,
        package_type=package_type,
        installed_version=str(vuln.get("InstalledVersion", "")),
        fixed_version=vuln.get("FixedVersion") or None,
        status=str(vuln.get("Status") or "unknown"),
        severity=severity if severity in _SEVERITY_RANK else "UNKNOWN",
        cvss=_cvss(_mapping(vuln.get("CVSS")), vuln.get("SeveritySource")),
        title=str(vuln.get("Title") or ""),
        description=str(vuln.get("Description") or ""),
        primary_url=vuln.get("PrimaryURL") or None,
        references=tuple(str(r) for r in _list(vuln.get("References"), "References")),
        package_path=vuln.get("PkgPath") or None,
        layer_digest=layer.get("Digest") or None,
        layer_diff_id=layer.get("DiffID") or None,
        purl=identifier.get("PURL") or None,
        data_source=_mapping(vuln.get("DataSource")).get("ID") or None,
    )


def _cvss(ratings: Mapping[str, Any], severity_source: Any) -> Cvss:
    """Pick one v3 rating: the source Trivy took the severity from, then NVD, then the
    first other source by name — the same preference order Trivy applies to severity."""
    order = [s for s in (severity_source, "nvd") if isinstance(s, str)]
    order += sorted(k for k in ratings if k not in order)
    for source in order:
        rating = _mapping(ratings.get(source))
        score, vector = rating.get("V3Score"), rating.get("V3Vector")
        if score or vector:
            return Cvss(float(score) if score else None, vector or None, source)
    return Cvss(None, None, None)


def _sort_key(f: Finding) -> tuple:
    return (_SEVERITY_RANK[f.severity], f.vulnerability_id, f.package_name,
            f.installed_version, f.package_path or "")


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ReportError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportError(f"{name}: expected a list, got {type(value).__name__}")
    return value
