"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<tag-or-digest>."""

from __future__ import annotations

from aiohttp import web

from registry.appkeys import BLOB_CACHE, BLOBS, CONFIG, METADATA, PULL_PROTECTION
from registry.auth.authorize import authorize
from registry import scanning
from registry.http_limits import BodyReadError, BodyTooLarge, declared_length, read_body
from registry.images import ImmutableTagError, ManifestDigestMismatchError, put_image
from registry.events import IMAGE_DELETED
from registry.metadata.models import (
    Event, ManifestRecord, MissingReferencesError, StillReferencedError,
)
from registry.oci.context import account_of, existing_repository, push_target, repository_name
from registry.oci.digests import Digest, digest_bytes, parse_digest
from registry.oci.errors import (
    DigestInvalid, ManifestBlobUnknown, ManifestInvalid, ManifestUnknown, OCIError, SizeInvalid,
    TagInvalid, Unsupported,
)
from registry.oci.manifests import ParsedManifest, parse_manifest
from registry.oci.names import check_tag, is_tag

MAX_TAGS_PER_PUT = 100


def _reference(text: str) -> tuple[Digest | None, str | None]:
    """Split a <tag-or-digest> to read or delete: (digest, None) or (None, tag).

    A reference that is neither a valid tag nor a digest Berth supports cannot name anything
    stored, so it is unknown (404), as Distribution answers and the conformance suite accepts
    ("sha256:baddigeststring", a tag ending in a newline, an md5 digest).

    Raises:
        ManifestUnknown: the reference cannot exist.
    """
    if is_tag(text):
        return None, text
    try:
        return parse_digest(text), None
    except OCIError:
        raise _manifest_unknown(text) from None


def _push_reference(text: str) -> tuple[Digest | None, str | None]:
    """Split the <tag-or-digest> of a manifest PUT; what cannot be stored is refused (400).

    Raises:
        DigestInvalid / UnsupportedDigest: a malformed digest or one of another algorithm.
        TagInvalid: neither a digest nor a valid tag (Distribution's ``TAG_INVALID``).
    """
    if ":" in text:  # tags never contain ':'
        return parse_digest(text), None
    return None, check_tag(text)


def _manifest_unknown(reference: str) -> ManifestUnknown:
    return ManifestUnknown("manifest unknown: Requested image not found",
                           detail={"reference": reference[:200]})


async def _resolve(request: web.Request) -> tuple[ManifestRecord, bytes | None]:
    name = repository_name(request)
    account = account_of(request)
    await authorize(request, "ecr:BatchGetImage", account, name)
    repo = await existing_repository(request, account, name)
    digest, tag = _reference(request.match_info["reference"])
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
    blobs = request.app[BLOBS]
    try:  # verified when read from disk: a corrupt file is answered as missing
        body = await request.app[BLOB_CACHE].read(
            record.digest, lambda: blobs.read_bytes(parse_digest(record.digest)))
    except FileNotFoundError:
        raise _manifest_unknown(record.digest) from None
    return web.Response(body=body, headers=_headers(record))


async def _read_manifest_body(request: web.Request) -> bytes:
    config = request.app[CONFIG]
    limit = config.limits.manifest_max_bytes
    try:
        body = await read_body(request, limit=limit,
                               idle_timeout=config.server.body_timeout_seconds)
    except BodyTooLarge:
        raise SizeInvalid(f"manifest larger than {limit} bytes", status=413) from None
    except BodyReadError as exc:
        raise SizeInvalid(f"incomplete manifest body: {exc}") from None
    declared = declared_length(request)
    if declared is not None and declared != len(body):
        raise SizeInvalid("body length does not match Content-Length")
    return body


def _tags(request: web.Request, tag: str | None) -> list[str]:
    tags = [tag] if tag else []
    for value in request.query.getall("tag", []):
        tags.append(check_tag(value))
    if len(tags) > MAX_TAGS_PER_PUT:
        raise ManifestInvalid(f"at most {MAX_TAGS_PER_PUT} tags per request", status=414)
    return list(dict.fromkeys(tags))


def _check_manifest(body: bytes, content_type: str | None,
                    url_digest: Digest | None) -> ParsedManifest:
    """Refuse a bad manifest before ``push_target`` may create its repository, so that bad
    input changes nothing (``put_image`` checks the same again, inside its transaction).

    Raises:
        DigestInvalid: the body does not hash to the digest in the URL.
        ManifestInvalid: not a valid manifest (strict JSON included).
    """
    if url_digest is not None:
        actual = digest_bytes(body, url_digest.algorithm)
        if actual != url_digest:
            raise DigestInvalid(f"manifest digest is {actual}, not {url_digest}",
                                detail={"digest": str(url_digest)})
    return parse_manifest(body, content_type)


def _missing(references) -> ManifestBlobUnknown:
    return ManifestBlobUnknown(
        "manifest references a manifest or blob unknown to registry: "
        + ", ".join(ref.digest for ref in references[:10]),
        detail={"missing": [ref.digest for ref in references]})


async def put_manifest(request: web.Request) -> web.Response:
    name = repository_name(request)
    reference = request.match_info["reference"]
    url_digest, tag = _push_reference(reference)
    tags = _tags(request, tag)
    account = account_of(request)
    await authorize(request, "ecr:PutImage", account, name)
    body = await _read_manifest_body(request)
    parsed = _check_manifest(body, request.headers.get("Content-Type"), url_digest)
    if parsed.references and request.app[CONFIG].create_on_push and \
            await request.app[METADATA].get_repository(account, name) is None:
        # Blobs are linked per repository: none can be in one that does not exist yet, and
        # a refused manifest must not leave a new, empty repository behind.
        raise _missing(parsed.references)
    repo = await push_target(request, account, name)
    try:
        pushed = await put_image(
            metadata=request.app[METADATA], blobs=request.app[BLOBS],
            cache=request.app[BLOB_CACHE], repository=repo, body=body,
            content_type=request.headers.get("Content-Type"), tags=tuple(tags),
            expected_digest=url_digest,
            writes_for=lambda record: scanning.push_hook(request.app[METADATA], repo, record))
    except ManifestDigestMismatchError as exc:
        raise DigestInvalid(str(exc), detail={"digest": str(exc.expected)}) from None
    except MissingReferencesError as exc:
        raise _missing(exc.missing) from None
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
        event = Event(IMAGE_DELETED, {"account": account, "repository": name,
                                      "digest": str(digest)})
        try:
            deleted = await metadata.delete_unreferenced_manifest(repo.id, str(digest),
                                                                  [event]) is not None
        except StillReferencedError as exc:
            # ECR refuses with ImageReferencedByManifestList; on /v2/ the answer for a delete
            # the registry will not do is 405 UNSUPPORTED (as for blobs), naming the index.
            raise Unsupported(
                f"manifest {digest} is referenced by the index {exc.referenced_by[0]} in "
                f"repository '{name}' (ImageReferencedByManifestList): delete the index first",
                status=405, detail={"digest": str(digest),
                                    "manifests": exc.referenced_by[:100]}) from None
    else:
        record = await metadata.resolve_tag(repo.id, tag or "")
        event = Event(IMAGE_DELETED, {"account": account, "repository": name, "tag": tag,
                                      "digest": record.digest if record else None})
        deleted = await metadata.delete_tag(repo.id, tag or "", [event])
    if not deleted:
        raise _manifest_unknown(reference)
    return web.Response(status=202, headers={"Content-Length": "0"})
