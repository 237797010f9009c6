"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<tag-or-digest>."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from registry.appkeys import BLOB_CACHE, BLOBS, CONFIG, METADATA, PULL_PROTECTION
from registry.auth.authorize import authorize
from registry import scanning
from registry.images import ImmutableTagError, ManifestDigestMismatchError, put_image
from registry.metadata.models import Event, ManifestRecord, MissingReferencesError
from registry.oci.context import account_of, existing_repository, push_target, repository_name
from registry.oci.digests import Digest, parse_digest
from registry.oci.errors import (
    DigestInvalid, ManifestBlobUnknown, ManifestInvalid, ManifestUnknown, SizeInvalid, TagInvalid,
)
from registry.oci.names import check_tag, is_tag

MAX_TAGS_PER_PUT = 100


def _reference(text: str) -> tuple[Digest | None, str | None]:
    """Split a <tag-or-digest>: (digest, None) or (None, tag).

    Raises:
        DigestInvalid / UnsupportedDigest for malformed digests, ManifestInvalid for bad tags.
    """
    if ":" in text:
        return parse_digest(text), None
    if not is_tag(text):
        raise ManifestInvalid(f"invalid reference: {text[:200]!r}")
    return None, text


def _manifest_unknown(reference: str) -> ManifestUnknown:
    return ManifestUnknown("manifest unknown: Requested image not found",
                           detail={"reference": reference[:200]})


async def _resolve(request: web.Request) -> tuple[ManifestRecord, bytes | None]:
    name = repository_name(request)
    digest, tag = _reference(request.match_info["reference"])
    account = account_of(request)
    await authorize(request, "ecr:BatchGetImage", account, name)
    repo = await existing_repository(request, account, name)
    metadata = request.app[METADATA]
    if digest is not None:
        record = await metadata.get_manifest(repo.id, str(digest))
    else:
        record = await metadata.resolve_tag(repo.id, tag or "")
    if record is None:
        raise _manifest_unknown(request.match_info["reference"])
    await request.app[PULL_PROTECTION].check(repo, record)
    return record, None


def _headers(record: ManifestRecord) -> dict[str, str]:
    return {"Content-Type": record.media_type, "Docker-Content-Digest": record.digest,
            "ETag": f'"{record.digest}"'}


async def head_manifest(request: web.Request) -> web.Response:
    record, _ = await _resolve(request)
    headers = _headers(record)
    headers["Content-Length"] = str(record.size)
    return web.Response(status=200, headers=headers)


async def get_manifest(request: web.Request) -> web.Response:
    record, _ = await _resolve(request)
    cache = request.app[BLOB_CACHE]
    body = cache.get(record.digest)
    if body is None:
        try:
            body = await request.app[BLOBS].read_bytes(parse_digest(record.digest))
        except FileNotFoundError:
            raise _manifest_unknown(record.digest) from None
        if not cache.put(record.digest, body):  # corrupt on disk: never serve it
            raise _manifest_unknown(record.digest)
    return web.Response(body=body, headers=_headers(record))


async def _read_manifest_body(request: web.Request) -> bytes:
    limit = request.app[CONFIG].limits.manifest_max_bytes
    declared = request.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise SizeInvalid(f"manifest larger than {limit} bytes", status=413)
    body = bytearray()
    try:
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise SizeInvalid(f"manifest larger than {limit} bytes", status=413)
    except (ConnectionError, EOFError, HttpProcessingError) as exc:
        raise SizeInvalid(f"incomplete manifest body: {exc.__class__.__name__}") from None
    if declared is not None and declared.isdigit() and int(declared) != len(body):
        raise SizeInvalid("body length does not match Content-Length")
    return bytes(body)


def _tags(request: web.Request, tag: str | None) -> list[str]:
    tags = [tag] if tag else []
    for value in request.query.getall("tag", []):
        tags.append(check_tag(value))
    if len(tags) > MAX_TAGS_PER_PUT:
        raise ManifestInvalid(f"at most {MAX_TAGS_PER_PUT} tags per request", status=414)
    return list(dict.fromkeys(tags))


async def put_manifest(request: web.Request) -> web.Response:
    name = repository_name(request)
    reference = request.match_info["reference"]
    url_digest, tag = _reference(reference)
    tags = _tags(request, tag)
    account = account_of(request)
    await authorize(request, "ecr:PutImage", account, name)
    body = await _read_manifest_body(request)
    repo = await push_target(request, account, name)
    try:
        pushed = await put_image(
            metadata=request.app[METADATA], blobs=request.app[BLOBS],
            cache=request.app[BLOB_CACHE], repository=repo, body=body,
            content_type=request.headers.get("Content-Type"), tags=tuple(tags),
            expected_digest=url_digest,
            in_transaction=await scanning.push_hook(request.app[METADATA], repo))
    except ManifestDigestMismatchError as exc:
        raise DigestInvalid(str(exc), detail={"digest": str(exc.expected)}) from None
    except MissingReferencesError as exc:
        raise ManifestBlobUnknown(
            "manifest references a manifest or blob unknown to registry: "
            + ", ".join(ref.digest for ref in exc.missing[:10]),
            detail={"missing": [ref.digest for ref in exc.missing]}) from None
    except ImmutableTagError as exc:
        raise TagInvalid(str(exc), detail={"tag": exc.tag}) from None
    scanning.announce_jobs(request.app)
    digest = pushed.digest
    headers = {"Location": f"/v2/{name}/manifests/{digest}",
               "Docker-Content-Digest": str(digest), "Content-Length": "0"}
    if pushed.parsed.subject is not None:
        headers["OCI-Subject"] = str(pushed.parsed.subject)
    response = web.Response(status=201, headers=headers)
    for accepted in tags:
        response.headers.add("OCI-Tag", accepted)
    return response


async def delete_manifest(request: web.Request) -> web.Response:
    name = repository_name(request)
    reference = request.match_info["reference"]
    digest, tag = _reference(reference)
    account = account_of(request)
    await authorize(request, "ecr:BatchDeleteImage", account, name)
    repo = await existing_repository(request, account, name)
    metadata = request.app[METADATA]
    if digest is not None:
        event = Event("image.deleted", {"account": account, "repository": name,
                                        "digest": str(digest)})
        deleted = await metadata.delete_manifest(repo.id, str(digest), [event])
    else:
        record = await metadata.resolve_tag(repo.id, tag or "")
        event = Event("image.deleted", {"account": account, "repository": name, "tag": tag,
                                        "digest": record.digest if record else None})
        deleted = await metadata.delete_tag(repo.id, tag or "", [event])
    if not deleted:
        raise _manifest_unknown(reference)
    return web.Response(status=202, headers={"Content-Length": "0"})
