"""ECR image operations: PutImage, BatchGetImage, BatchDeleteImage, ListImages, DescribeImages."""

from __future__ import annotations

from typing import Any

from registry import scanning
from registry.appkeys import PULL_PROTECTION
from registry.ecr import shapes
from registry.ecr.call import ECRCall
from registry.ecr.errors import (
    ImageAlreadyExistsException, ImageDigestDoesNotMatchException,
    ImageTagAlreadyExistsException, InvalidParameterException, LayersNotFoundException,
    ReferencedImagesNotFoundException, invalid_parameter,
)
from registry.ecr.images_common import require_image, resolve_all
from registry.ecr.pagination import keyset, next_page
from registry.ecr.scan_shapes import nonzero
from registry.images import (
    ImageAlreadyExistsError, ImmutableTagError, ManifestDigestMismatchError, put_image,
)
from registry.events import IMAGE_DELETED
from registry.metadata.models import Event, MissingReferencesError, StillReferencedError
from registry.oci.digests import parse_digest
from registry.oci.errors import OCIError
from registry.oci.manifests import load_manifest_json
from registry.oci.names import is_tag


async def put_image_op(call: ECRCall) -> dict[str, Any]:
    p = call.params
    name = p["repositoryName"]
    await call.authorize("ecr:PutImage", name)
    repo = await call.repository(name)
    text: str = p["imageManifest"]
    media_type = p.get("imageManifestMediaType")
    tag = p.get("imageTag")
    if tag is not None and not is_tag(tag):
        raise invalid_parameter("imageTag", "Member must satisfy regular expression "
                                            "'[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}'")
    try:
        document = load_manifest_json(text)
    except OCIError as exc:
        raise invalid_parameter("imageManifest", f"Invalid JSON syntax: {exc.message}") from None
    if isinstance(document, dict) and "mediaType" not in document and not media_type:
        raise InvalidParameterException(
            "Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
            "'Member must be set when the manifest does not declare mediaType'")
    expected = None
    if p.get("imageDigest"):
        try:
            expected = parse_digest(p["imageDigest"])
        except OCIError:
            raise invalid_parameter("imageDigest", "Invalid digest") from None
    body = text.encode()
    try:
        pushed = await put_image(metadata=call.metadata, blobs=call.blobs, cache=call.cache,
                                 repository=repo, body=body, content_type=media_type,
                                 tags=(tag,) if tag else (), expected_digest=expected,
                                 reject_unchanged=True,
                                 writes_for=await scanning.push_hook(call.metadata, repo))
    except ManifestDigestMismatchError as exc:
        raise ImageDigestDoesNotMatchException(
            f"The specified digest '{exc.expected}' does not match the digest of the manifest "
            f"'{exc.actual}'") from None
    except ImageAlreadyExistsError as exc:
        raise ImageAlreadyExistsException(
            f"Image with digest '{exc.digest}' and tag '{exc.tag or 'null'}' already exists in "
            f"the repository with name '{name}' in registry with id '{repo.account}'") from None
    except ImmutableTagError as exc:
        raise ImageTagAlreadyExistsException(str(exc)) from None
    except MissingReferencesError as exc:
        blobs = [r.digest for r in exc.missing if r.kind == "blob"]
        if blobs:
            raise LayersNotFoundException(
                f"Layers with digests {blobs} required for pushing image into repository with "
                f"name '{name}' in the registry with id '{repo.account}' do not exist") from None
        raise ReferencedImagesNotFoundException(
            f"Images with digests {[r.digest for r in exc.missing]} referenced by the manifest "
            f"do not exist in the repository with name '{name}'") from None
    except OCIError as exc:
        raise InvalidParameterException(f"Invalid parameter at 'imageManifest' failed to "
                                        f"satisfy constraint: '{exc.message}'") from None
    scanning.announce_jobs(call.app)
    return {"image": {"registryId": repo.account, "repositoryName": name,
                      "imageId": shapes.image_id(str(pushed.digest), tag),
                      "imageManifest": text,
                      "imageManifestMediaType": pushed.parsed.media_type}}


async def batch_get_image(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:BatchGetImage", name)
    repo = await call.repository(name)
    images: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    protection = call.app[PULL_PROTECTION]
    async for _, found in resolve_all(call, repo, call.params["imageIds"], failures):
        record = found.record
        assert record is not None
        blocked = await protection.blocked_image(repo, record)
        if blocked is not None:
            # ImageInaccessible is the model's failure code for an image that exists but
            # cannot be handed out; the image is not pulled, so no pull time is recorded.
            failures.append(shapes.failure(
                shapes.image_id(record.digest, found.tag), "ImageInaccessible",
                f"Pull protection: {blocked.reason()}"))
            continue
        try:  # verified when read from disk: a corrupt manifest is never handed out
            body = await call.cache.read(
                record.digest, lambda: call.blobs.read_bytes(parse_digest(record.digest)))
        except FileNotFoundError:
            failures.append(shapes.failure(
                shapes.image_id(record.digest, found.tag), "ImageInaccessible",
                "The image manifest is missing or damaged in storage; push the image again"))
            continue
        images.append({"registryId": repo.account, "repositoryName": name,
                       "imageId": shapes.image_id(record.digest, found.tag),
                       "imageManifest": body.decode(),
                       "imageManifestMediaType": record.media_type})
        await call.metadata.record_pull(repo.id, record.digest)
    return {"images": images, "failures": failures}


async def batch_delete_image(call: ECRCall) -> dict[str, Any]:
    """By tag: the tag goes, and the image with its last tag unless an index references it
    (reference 3), decided in the same transaction as the tag's removal. By digest: the
    image and all its tags, unless an index references it (ImageReferencedByManifestList)."""
    name = call.params["repositoryName"]
    await call.authorize("ecr:BatchDeleteImage", name)
    repo = await call.repository(name)
    deleted: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    async for image_id, found in resolve_all(call, repo, call.params["imageIds"], failures):
        record = found.record
        assert record is not None
        if found.tag and not image_id.get("imageDigest"):
            tag = found.tag
            gone = await call.metadata.delete_image_tag(
                repo.id, tag, lambda digest: [_deleted_event(repo, digest, tag)])
            if gone is None:  # deleted by a concurrent request since it was resolved
                failures.append(shapes.failure(shapes.image_id(None, tag), "ImageNotFound",
                                               "Requested image not found"))
            else:
                deleted.append(shapes.image_id(gone.digest, tag))
            continue
        try:
            tags = await call.metadata.delete_unreferenced_manifest(
                repo.id, record.digest, [_deleted_event(repo, record.digest, found.tag)])
        except StillReferencedError:
            failures.append(shapes.failure(shapes.image_id(record.digest, found.tag),
                                           "ImageReferencedByManifestList",
                                           "Requested image is referenced by a manifest list"))
            continue
        if tags is None:
            failures.append(shapes.failure(shapes.image_id(record.digest, found.tag),
                                           "ImageNotFound", "Requested image not found"))
        else:
            deleted.extend(shapes.image_id(record.digest, t) for t in tags or [None])
    return {"imageIds": deleted, "failures": failures}


def _deleted_event(repo, digest: str, tag: str | None) -> Event:
    return Event(IMAGE_DELETED, {"account": repo.account, "repository": repo.name,
                                 "digest": digest, "tag": tag})


def _tag_status(params: dict[str, Any]) -> str:
    return (params.get("filter") or {}).get("tagStatus") or "ANY"


async def list_images(call: ECRCall) -> dict[str, Any]:
    """One bounded query per page: (digest, tag) pairs after the token's position; an
    untagged image is (digest, "")."""
    name = call.params["repositoryName"]
    await call.authorize("ecr:ListImages", name)
    repo = await call.repository(name)
    after, size = keyset(call.params, lambda p: isinstance(p, list) and len(p) == 2 and all(
        isinstance(v, str) for v in p))
    entries = await call.metadata.list_image_ids(
        repo.id, tag_status=_tag_status(call.params),
        after=None if after is None else (after[0], after[1]), limit=size + 1)
    chunk, token = next_page(entries, size, key=list)
    result: dict[str, Any] = {"imageIds": [shapes.image_id(d, t or None) for d, t in chunk]}
    if token:
        result["nextToken"] = token
    return result


def _detail(repo, image, scans) -> dict[str, Any]:
    record = image.manifest
    detail: dict[str, Any] = {
        "registryId": repo.account, "repositoryName": repo.name, "imageDigest": record.digest,
        "imageSizeInBytes": image.size_with_layers or record.size,
        "imagePushedAt": record.pushed_at, "imageManifestMediaType": record.media_type,
        "imageStatus": "ACTIVE",
    }
    if image.tags:
        detail["imageTags"] = list(image.tags)
    if record.artifact_type:
        detail["artifactMediaType"] = record.artifact_type
    if image.last_pulled_at:
        detail["lastRecordedPullTime"] = image.last_pulled_at
    if record.subject_digest:
        detail["subjectManifestDigest"] = record.subject_digest
    scan = scans.get(record.digest)
    if scan is not None:
        detail["imageScanStatus"] = {"status": scan.status,
                                     "description": scan.description or scan.status}
        if scan.status == "COMPLETE":
            summary: dict[str, Any] = {
                "imageScanCompletedAt": scan.completed_at,
                "findingSeverityCounts": nonzero(scan.severity_counts)}
            if scan.db_updated_at:
                summary["vulnerabilitySourceUpdatedAt"] = scan.db_updated_at
            detail["imageScanFindingsSummary"] = summary
    return detail


async def describe_images(call: ECRCall) -> dict[str, Any]:
    p = call.params
    name = p["repositoryName"]
    await call.authorize("ecr:DescribeImages", name)
    repo = await call.repository(name)
    if p.get("imageIds") is not None:
        if "nextToken" in p or "maxResults" in p:
            raise InvalidParameterException("nextToken and maxResults cannot be used with "
                                            "imageIds")
        digests = [(await require_image(call, repo, image_id)).record.digest
                   for image_id in p["imageIds"]]
        by_digest = await call.metadata.images_by_digest(repo.id, digests)
        selected = [by_digest[d] for d in digests if d in by_digest]
        scans = await call.metadata.scan_summaries(repo.id, [i.manifest.digest for i in selected])
        return {"imageDetails": [_detail(repo, i, scans) for i in selected]}
    # One bounded query per page: the images after the token's digest, with their tags.
    after, size = keyset(p, lambda position: isinstance(position, str))
    images = await call.metadata.image_page(repo.id, tag_status=_tag_status(p), after=after,
                                            limit=size + 1)
    chunk, token = next_page(images, size, key=lambda i: i.manifest.digest)
    scans = await call.metadata.scan_summaries(repo.id, [i.manifest.digest for i in chunk])
    result: dict[str, Any] = {"imageDetails": [_detail(repo, i, scans) for i in chunk]}
    if token:
        result["nextToken"] = token
    return result


OPERATIONS = {
    "PutImage": put_image_op,
    "BatchGetImage": batch_get_image,
    "BatchDeleteImage": batch_delete_image,
    "ListImages": list_images,
    "DescribeImages": describe_images,
}
