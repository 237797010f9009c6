"""Output shapes of the ECR API, built from Berth's records (epoch-second timestamps)."""

from __future__ import annotations

from typing import Any

from registry.metadata.models import Repository


def repository(call, repo: Repository) -> dict[str, Any]:
    settings = repo.settings
    shape: dict[str, Any] = {
        "repositoryArn": call.arn(repo.name) if repo.account == call.account
        else f"arn:aws:ecr:{call.config.region}:{repo.account}:repository/{repo.name}",
        "registryId": repo.account,
        "repositoryName": repo.name,
        "repositoryUri": call.repository_uri(repo.name, repo.account),
        "createdAt": repo.created_at,
        "imageTagMutability": settings.image_tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": settings.scan_on_push},
        "encryptionConfiguration": {"encryptionType": settings.encryption_type},
    }
    if settings.kms_key:
        shape["encryptionConfiguration"]["kmsKey"] = settings.kms_key
    if settings.mutability_filters:
        shape["imageTagMutabilityExclusionFilters"] = [
            {"filterType": "WILDCARD", "filter": f} for f in settings.mutability_filters]
    return shape


def image_id(digest: str | None, tag: str | None) -> dict[str, str]:
    shape = {}
    if digest:
        shape["imageDigest"] = digest
    if tag:
        shape["imageTag"] = tag
    return shape


def failure(image: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    return {"imageId": image, "failureCode": code, "failureReason": reason}
