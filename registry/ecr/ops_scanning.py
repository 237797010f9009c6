"""ECR scanning operations: registry/repository configuration, StartImageScan,
DescribeImageScanFindings (ecr-api.md §9)."""

from __future__ import annotations

import time
from typing import Any

from registry import scanning
from registry.ecr import scan_shapes, shapes
from registry.ecr.call import ECRCall
from registry.ecr.errors import (
    InvalidParameterException, LimitExceededException,
    ScanNotFoundException, ValidationException,
)
from registry.ecr.images_common import require_image
from registry.ecr.pagination import page


async def put_registry_scanning_configuration(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:PutRegistryScanningConfiguration")
    scan_type = call.params.get("scanType") or "BASIC"
    rules = []
    seen = set()
    for rule in call.params.get("rules") or []:
        frequency = rule["scanFrequency"]
        if frequency in seen:
            raise InvalidParameterException(
                f"Only one rule per scan frequency is allowed; {frequency} appears twice")
        seen.add(frequency)
        if scan_type == "BASIC" and frequency == "CONTINUOUS_SCAN":
            raise ValidationException("Scan frequency CONTINUOUS_SCAN is not supported for "
                                      "scan type BASIC")
        filters = tuple(f["filter"] for f in rule["repositoryFilters"])
        rules.append(scanning.ScanRule(frequency, filters))
    config = scanning.ScanningConfiguration(scan_type, tuple(rules))
    await scanning.save_configuration(call.metadata, call.account, config)
    return {"registryScanningConfiguration": config.to_json()}


async def get_registry_scanning_configuration(call: ECRCall) -> dict[str, Any]:
    await call.authorize("ecr:GetRegistryScanningConfiguration")
    config = await scanning.load_configuration(call.metadata, call.account)
    return {"registryId": call.account, "scanningConfiguration": config.to_json()}


async def batch_get_repository_scanning_configuration(call: ECRCall) -> dict[str, Any]:
    config = await scanning.load_configuration(call.metadata, call.account)
    configurations, failures = [], []
    for name in call.params["repositoryNames"]:
        await call.authorize("ecr:BatchGetRepositoryScanningConfiguration", name)
        repo = await call.metadata.get_repository(call.account, name)
        if repo is None:
            failures.append({"repositoryName": name, "failureCode": "REPOSITORY_NOT_FOUND",
                             "failureReason": "REPOSITORY_NOT_FOUND"})
            continue
        frequency, applied = scanning.repository_frequency(config, repo)
        configurations.append({
            "repositoryArn": call.arn(name), "repositoryName": name,
            "scanOnPush": frequency in ("SCAN_ON_PUSH", "CONTINUOUS_SCAN"),
            "scanFrequency": frequency,
            "appliedScanFilters": [{"filter": f, "filterType": "WILDCARD"} for f in applied]})
    return {"scanningConfigurations": configurations, "failures": failures}


async def start_image_scan(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:StartImageScan", name)
    repo = await call.repository(name)
    found = await require_image(call, repo, call.params["imageId"])
    digest = found.record.digest
    config = await scanning.load_configuration(call.metadata, call.account)
    request = scanning.scan_request(repo, digest, scan_type=config.scan_type, reason="manual",
                                    priority=scanning.MANUAL_PRIORITY)
    started = await call.metadata.start_scan(
        request, min_interval=scanning.BASIC_INTERVAL if config.scan_type == "BASIC" else None)
    if started:
        scanning.announce_jobs(call.app)
    if not started:
        raise LimitExceededException("The scan quota per image has been exceeded. Wait and "
                                     "try again.")
    return {"registryId": repo.account, "repositoryName": name,
            "imageId": shapes.image_id(digest, found.tag),
            "imageScanStatus": {"status": "IN_PROGRESS", "description": "The scan is in progress."}}


async def describe_image_scan_findings(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:DescribeImageScanFindings", name)
    repo = await call.repository(name)
    found = await require_image(call, repo, call.params["imageId"])
    digest = found.record.digest
    scan = await call.metadata.get_scan(repo.id, digest)
    if scan is None:
        raise ScanNotFoundException(
            f"Image scan does not exist for the image with '{{imageDigest:'{digest}', "
            f"imageTag:'{found.tag or 'null'}'}}' in the repository with name '{name}' in the "
            f"registry with id '{repo.account}'")
    result: dict[str, Any] = {
        "registryId": repo.account, "repositoryName": name,
        "imageId": shapes.image_id(digest, found.tag),
        "imageScanStatus": {"status": scan.status, "description": scan.description
                            or _status_text(scan.status)}}
    if scan.status != "COMPLETE":
        return result
    ordered = sorted(scan.findings, key=lambda f: (f["vulnerability_id"], f["package_name"],
                                                   f.get("package_path") or ""))
    chunk, token = page(ordered, call.params,
                        key=lambda f: (f["vulnerability_id"], f["package_name"],
                                       f.get("package_path") or ""))
    findings: dict[str, Any] = {
        "imageScanCompletedAt": scan.completed_at,
        "findingSeverityCounts": scan_shapes.nonzero(scan.severity_counts)}
    if scan.db_updated_at:
        findings["vulnerabilitySourceUpdatedAt"] = scan.db_updated_at
    if scan.scan_type == "ENHANCED":
        tags = await call.metadata.tags_for(repo.id, digest)
        findings["enhancedFindings"] = [scan_shapes.enhanced(
            f, account=repo.account, region=call.config.region, repository=name, digest=digest,
            tags=tags, pushed_at=found.record.pushed_at, observed_at=scan.completed_at or
            time.time()) for f in chunk]
    else:
        findings["findings"] = [scan_shapes.basic(f) for f in chunk]
    result["imageScanFindings"] = findings
    if token:
        result["nextToken"] = token
    return result


def _status_text(status: str) -> str:
    return {"COMPLETE": "The scan was completed successfully.",
            "IN_PROGRESS": "The scan is in progress.",
            "PENDING": "The scan is pending."}.get(status, status)


OPERATIONS = {
    "PutRegistryScanningConfiguration": put_registry_scanning_configuration,
    "GetRegistryScanningConfiguration": get_registry_scanning_configuration,
    "BatchGetRepositoryScanningConfiguration": batch_get_repository_scanning_configuration,
    "StartImageScan": start_image_scan,
    "DescribeImageScanFindings": describe_image_scan_findings,
}
