"""Resolving ECR ``ImageIdentifier`` values against a repository."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from registry.ecr import shapes
from registry.ecr.errors import ImageNotFoundException, InvalidParameterException
from registry.metadata.models import ManifestRecord, Repository
from registry.oci.digests import is_digest
from registry.oci.names import is_tag

# Identifiers that cannot name any image: operations that name one image refuse them.
_INVALID_IDS = frozenset({"InvalidImageDigest", "InvalidImageTag", "MissingDigestAndTag"})
_MODEL_DIGEST = re.compile(r"[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+")  # fullmatch: no "\n" after it


@dataclass(frozen=True)
class Resolved:
    record: ManifestRecord | None
    tag: str | None
    failure: dict[str, Any] | None


async def resolve(metadata, repo: Repository, image_id: dict[str, Any]) -> Resolved:
    """Find the manifest an ImageIdentifier names, or the ECR failure entry for it."""
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    ident = shapes.image_id(digest, tag)
    if not digest and not tag:
        return Resolved(None, None, shapes.failure(
            ident, "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null"))
    if digest and (not _MODEL_DIGEST.fullmatch(digest) or not is_digest(digest)):
        return Resolved(None, tag, shapes.failure(
            ident, "InvalidImageDigest", "Invalid request parameters: image digest should "
            "satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'"))
    if tag and not is_tag(tag):
        # The model leaves imageTag unconstrained; no stored tag can look like this one.
        return Resolved(None, tag, shapes.failure(
            ident, "InvalidImageTag", "Invalid request parameters: image tag should satisfy "
            "the regex '[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}'"))
    record = None
    if tag:
        record = await metadata.resolve_tag(repo.id, tag)
        if record is not None and digest and record.digest != digest:
            return Resolved(None, tag, shapes.failure(
                ident, "ImageTagDoesNotMatchDigest", "Invalid request parameters: given tag "
                "and digest do not match"))
    elif digest:
        record = await metadata.get_manifest(repo.id, digest)
    if record is None:
        return Resolved(None, tag, shapes.failure(ident, "ImageNotFound",
                                                  "Requested image not found"))
    return Resolved(record, tag, None)


def image_not_found_message(image_id: dict[str, Any], repo: Repository) -> str:
    digest = image_id.get("imageDigest")
    tag = image_id.get("imageTag")
    return (f"The image with imageId {{imageDigest:'{digest or 'null'}', "
            f"imageTag:'{tag or 'null'}'}} does not exist within the repository with name "
            f"'{repo.name}' in the registry with id '{repo.account}'")


async def require_image(call, repo: Repository, image_id: dict[str, Any]) -> Resolved:
    """Resolve an ImageIdentifier the operation cannot do without.

    Raises: ImageNotFoundException with ECR's message.
    """
    found = await resolve(call.metadata, repo, image_id)
    if found.failure is not None and found.failure["failureCode"] in _INVALID_IDS:
        raise InvalidParameterException(found.failure["failureReason"])
    if found.record is None:
        raise ImageNotFoundException(image_not_found_message(image_id, repo))
    return found


async def resolve_all(call, repo: Repository, image_ids: list[dict[str, Any]],
                      failures: list[dict[str, Any]]):
    """Yield (image id, resolved) for each identifier that names an image; the others go to
    ``failures`` as ECR's batch operations report them."""
    for image_id in image_ids:
        found = await resolve(call.metadata, repo, image_id)
        if found.failure:
            failures.append(found.failure)
            continue
        yield image_id, found
