"""ECR's scan findings shapes (ecr-api.md §9.4) from Berth's normalised finding rows."""

from __future__ import annotations

import hashlib
from typing import Any

SEVERITY = {"UNKNOWN": "UNDEFINED"}
PACKAGE_MANAGER = {"os": "OS", "python": "PYTHONPKG", "npm": "NODEPKG", "go": "GOBINARY",
                   "jar": "JAR", "rust": "CARGO"}


def _cvss(finding: dict[str, Any]) -> dict[str, Any]:
    return finding.get("cvss") or {}


def _severity(finding: dict[str, Any]) -> str:
    value = (finding.get("severity") or "UNKNOWN").upper()
    return SEVERITY.get(value, value)


def basic(finding: dict[str, Any]) -> dict[str, Any]:
    attributes = [{"key": "package_name", "value": finding["package_name"]},
                  {"key": "package_version", "value": finding.get("installed_version") or "-"}]
    if finding.get("fixed_version"):
        attributes.append({"key": "fixed_in_version", "value": finding["fixed_version"]})
    cvss = _cvss(finding)
    if cvss.get("v3_score") is not None:
        attributes.append({"key": "CVSS3_SCORE", "value": str(cvss["v3_score"])})
    if cvss.get("v3_vector"):
        attributes.append({"key": "CVSS3_VECTOR", "value": cvss["v3_vector"]})
    shape: dict[str, Any] = {"name": finding["vulnerability_id"], "severity": _severity(finding),
                             "attributes": attributes}
    if finding.get("description"):
        shape["description"] = finding["description"][:4000]
    if finding.get("primary_url"):
        shape["uri"] = finding["primary_url"]
    return shape


def enhanced(finding: dict[str, Any], *, account: str, region: str, repository: str,
             digest: str, tags: list[str], pushed_at: float, observed_at: float) -> dict[str, Any]:
    key = f"{repository}|{digest}|{finding['vulnerability_id']}|{finding['package_name']}|" \
          f"{finding.get('package_path') or ''}"
    finding_id = hashlib.sha256(key.encode()).hexdigest()[:32]
    rating = _cvss(finding)
    cvss = []
    if rating.get("v3_score") is not None:
        cvss.append({"baseScore": rating["v3_score"], "scoringVector": rating.get("v3_vector") or "",
                     "source": rating.get("source") or "nvd", "version": "3.1"})
    package = {"name": finding["package_name"], "version": finding.get("installed_version") or "",
               "packageManager": PACKAGE_MANAGER.get(finding.get("package_type") or "", "OS")}
    if finding.get("fixed_version"):
        package["fixedInVersion"] = finding["fixed_version"]
    if finding.get("package_path"):
        package["filePath"] = finding["package_path"]
    if finding.get("layer_digest"):
        package["sourceLayerHash"] = finding["layer_digest"]
    shape: dict[str, Any] = {
        "awsAccountId": account,
        "findingArn": f"arn:aws:inspector2:{region}:{account}:finding/{finding_id}",
        "description": (finding.get("description") or finding.get("title") or "")[:4000],
        "firstObservedAt": observed_at, "lastObservedAt": observed_at, "updatedAt": observed_at,
        "severity": _severity(finding), "status": "ACTIVE", "type": "PACKAGE_VULNERABILITY",
        "title": finding.get("title") or finding["vulnerability_id"],
        "fixAvailable": "YES" if finding.get("fixed_version") else "NO",
        "packageVulnerabilityDetails": {
            "vulnerabilityId": finding["vulnerability_id"],
            "source": finding.get("data_source") or "trivy",
            "referenceUrls": list(finding.get("references") or [])[:20],
            "cvss": cvss, "vulnerablePackages": [package]},
        "resources": [{"type": "AWS_ECR_CONTAINER_IMAGE",
                       "id": f"arn:aws:ecr:{region}:{account}:repository/{repository}/{digest}",
                       "details": {"awsEcrContainerImage": {
                           "imageHash": digest, "repositoryName": repository,
                           "registry": account, "imageTags": tags, "pushedAt": pushed_at}}}],
    }
    if finding.get("primary_url"):
        shape["packageVulnerabilityDetails"]["sourceUrl"] = finding["primary_url"]
        shape["remediation"] = {"recommendation": {
            "text": f"Upgrade {finding['package_name']}"
                    + (f" to {finding['fixed_version']}" if finding.get("fixed_version") else ""),
            "url": finding["primary_url"]}}
    if rating.get("v3_score") is not None:
        shape["score"] = rating["v3_score"]
    return shape


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {SEVERITY.get(k, k): v for k, v in counts.items() if v}
