"""Blob upload sessions: POST, PATCH, PUT, GET and DELETE under /v2/<name>/blobs/uploads/.

The handler maps HTTP onto the store's session operations; the store owns hashing,
durability and the session lock that closes a session atomically across worker processes (a
PATCH, PUT, DELETE or status request that comes after a closing PUT took the session answers
BLOB_UPLOAD_UNKNOWN), the metadata store owns visibility: a finished upload is claimed,
published (durable, renamed into place) and then linked into the repository, in that order
and outside any transaction but the link's own (registry/publishing.py). Open sessions are capped per repository and per principal
(``[uploads] max_sessions_per_*``).
"""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from registry.appkeys import BLOBS, CONFIG, METADATA, METRICS, PULL_PROTECTION, UPLOAD_ACTIVITY
from registry.auth.authorize import authorize, is_allowed, principal_of
from registry.http_limits import BodyReadError, iter_body
from registry.metadata.models import Repository
from registry.oci.context import account_of, push_target, repository_name
from registry.oci.digests import ALGORITHMS, Digest, UnsupportedDigest, parse_digest
from registry.oci.errors import (
    BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, SizeInvalid, TooManyRequests,
)
from registry.oci.names import check_name
from registry.oci.ranges import parse_content_range
from registry.publishing import store_blob
from registry.storage.base import (
    DigestMismatchError, IncompleteBodyError, OffsetMismatchError, TooManyUploadsError,
    UploadSession, UploadUnknownError,
)
from registry.storage.sessionindex import limit_message, session_limits


def _location(name: str, session_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{session_id}"


def _range(offset: int) -> str:
    # distribution's convention: an empty session reports "0-0".
    return f"0-{max(offset - 1, 0)}"


def _session_headers(name: str, session: UploadSession) -> dict[str, str]:
    return {"Location": _location(name, session.id), "Range": _range(session.offset),
            "Docker-Upload-UUID": session.id, "Content-Length": "0"}


def _blob_created(name: str, digest: Digest) -> web.Response:
    return web.Response(status=201, headers={
        "Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest),
        "Content-Length": "0"})


def _content_length(request: web.Request) -> int | None:
    value = request.headers.get("Content-Length")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise SizeInvalid("invalid Content-Length")
    return int(value)


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    received = 0
    try:
        async for chunk in iter_body(request, request.app[CONFIG].server.body_timeout_seconds):
            received += len(chunk)
            yield chunk
    except BodyReadError as exc:
        # The client went away, stalled, or sent less than it announced.
        raise IncompleteBodyError(f"request body incomplete: {exc}") from None
    finally:
        request.app[METRICS].bytes_in.inc(received)  # once per body, not per chunk


async def _session(request: web.Request, name: str) -> UploadSession:
    session_id = request.match_info["session"]
    try:
        session = await request.app[BLOBS].get_upload(session_id)
    except UploadUnknownError:
        raise BlobUploadUnknown(f"blob upload unknown to registry: {session_id[:64]}") from None
    if session.repository != f"{account_of(request)}/{name}":
        raise BlobUploadUnknown(f"blob upload unknown to registry: {session_id[:64]}")
    return session


async def _append(request: web.Request, name: str, session: UploadSession,
                  offset: int | None, length: int | None,
                  digest: Digest | None = None) -> UploadSession:
    metrics = request.app[METRICS]
    metrics.uploads_in_progress.inc()
    try:
        with request.app[UPLOAD_ACTIVITY].upload():
            return await request.app[BLOBS].append(session.id, _body(request), offset=offset,
                                                   length=length, digest=digest)
    except OffsetMismatchError as exc:
        current = session.offset if exc.offset is None else exc.offset
        raise BlobUploadInvalid("chunk out of order", status=416, headers={
            "Location": _location(name, session.id), "Range": _range(current),
            "Docker-Upload-UUID": session.id}) from None
    except IncompleteBodyError as exc:
        raise SizeInvalid(str(exc)) from None
    except UploadUnknownError:
        raise BlobUploadUnknown("blob upload unknown to registry") from None
    finally:
        metrics.uploads_in_progress.dec()


async def _complete(request: web.Request, repo: Repository, name: str,
                    session: UploadSession, digest: Digest) -> web.Response:
    blobs = request.app[BLOBS]
    try:
        staged = await blobs.finish_upload(session.id, digest)
    except DigestMismatchError as exc:
        raise DigestInvalid(f"provided digest did not match uploaded content: {exc}",
                            detail={"digest": str(digest)}) from None
    except UploadUnknownError:
        raise BlobUploadUnknown("blob upload unknown to registry") from None
    await store_blob(request.app[METADATA], blobs, repo.id, staged)
    return _blob_created(name, digest)


async def _open_session(request: web.Request, account: str, name: str,
                        algorithm: str) -> UploadSession:
    config = request.app[CONFIG]
    try:
        return await request.app[BLOBS].create_upload(
            f"{account}/{name}", algorithm, owner=principal_of(request).arn,
            limits=session_limits(config))
    except TooManyUploadsError as exc:
        request.app[METRICS].uploads_refused.labels(scope=exc.scope).inc()
        raise TooManyRequests(limit_message(exc, config.uploads.stale_after_seconds),
                              detail={"scope": exc.scope, "limit": exc.limit}) from None


async def start_upload(request: web.Request) -> web.Response:
    name = repository_name(request)
    account = account_of(request)
    query = request.query
    digest = parse_digest(query["digest"]) if "digest" in query else None
    algorithm = query.get("digest-algorithm", digest.algorithm if digest else "sha256")
    if algorithm not in ALGORITHMS:
        raise UnsupportedDigest(f"unsupported digest algorithm: {algorithm[:32]}")
    await authorize(request, "ecr:InitiateLayerUpload", account, name)
    if "mount" in query:
        mounted = await _try_mount(request, account, name, query)
        if mounted is not None:
            return mounted
    length = _content_length(request)
    repo = await push_target(request, account, name)
    if digest is None and length:
        # Refused before a session exists: a session the client never hears of would hold
        # a slot of the caps until it goes stale.
        raise BlobUploadInvalid("a body on POST needs ?digest=")
    session = await _open_session(request, account, name, algorithm)
    if digest is None:
        return web.Response(status=202, headers=_session_headers(name, session))
    # Single-POST monolithic upload (end-4b).
    await authorize(request, "ecr:UploadLayerPart", account, name)
    await authorize(request, "ecr:CompleteLayerUpload", account, name)
    try:
        session = await _append(request, name, session, 0, length)
        return await _complete(request, repo, name, session, digest)
    except BaseException:
        # Synchronous, so it completes even when the request is being cancelled.
        request.app[BLOBS].discard_upload(session.id)
        raise


async def _try_mount(request: web.Request, account: str, name: str,
                     query) -> web.Response | None:
    """Mount when the source repository holds the blob and the caller may download it
    there; otherwise None, and the caller starts a normal session (202) without revealing
    why (a missing source, a refused permission and a missing blob look alike).

    AWS documents one permission for mounting: ``ecr:GetDownloadUrlForLayer`` on the source
    repository (blob-mounting.html: "Users need ecr:GetDownloadUrlForLayer IAM permission on
    a repository to mount layers from the repository"). It is exactly what a client would
    need to fetch the bytes and upload them itself, so a mount never grants more than that;
    for the same reason a layer that pull protection withholds is not mounted either.
    """
    try:
        digest = parse_digest(query["mount"])
    except Exception:
        raise DigestInvalid("invalid mount digest") from None
    source_name = query.get("from")
    if not source_name:
        return None
    try:
        check_name(source_name)
    except Exception:
        return None
    metadata = request.app[METADATA]
    # ECR mounts only when the registry's BLOB_MOUNTING setting is ENABLED (reference 6).
    if await metadata.get_setting(account, "BLOB_MOUNTING") != "ENABLED":
        return None
    # A refusal only means "upload instead": not a denial to log, nor one that would
    # suppress this request's audit line.
    if not await is_allowed(request, "ecr:GetDownloadUrlForLayer", account, source_name,
                            record=False):
        return None
    source = await metadata.get_repository(account, source_name)
    if source is None or await metadata.linked_blob_size(source.id, str(digest)) is None:
        return None
    if await request.app[PULL_PROTECTION].blocked_layer(source, str(digest)) is not None:
        return None
    target = await push_target(request, account, name)
    if await metadata.mount_blob(source.id, target.id, str(digest)) is None:
        return None
    return _blob_created(name, digest)


async def patch_upload(request: web.Request) -> web.Response:
    name = repository_name(request)
    account = account_of(request)
    await authorize(request, "ecr:UploadLayerPart", account, name)
    session = await _session(request, name)
    length = _content_length(request)
    offset = None
    content_range = request.headers.get("Content-Range")
    if content_range:
        parsed = parse_content_range(content_range)
        if parsed is None:
            raise BlobUploadInvalid("invalid Content-Range", status=416, headers={
                "Location": _location(name, session.id), "Range": _range(session.offset)})
        start, end = parsed
        if start != session.offset:
            raise BlobUploadInvalid("chunk out of order", status=416, headers={
                "Location": _location(name, session.id), "Range": _range(session.offset),
                "Docker-Upload-UUID": session.id})
        if length is not None and length != end - start + 1:
            raise SizeInvalid("Content-Length does not match Content-Range")
        offset, length = start, end - start + 1
    session = await _append(request, name, session, offset, length)
    return web.Response(status=202, headers=_session_headers(name, session))


async def put_upload(request: web.Request) -> web.Response:
    name = repository_name(request)
    account = account_of(request)
    await authorize(request, "ecr:CompleteLayerUpload", account, name)
    if "digest" not in request.query:
        raise DigestInvalid("the closing PUT needs ?digest=")
    digest = parse_digest(request.query["digest"])
    session = await _session(request, name)
    repo = await push_target(request, account, name)
    length = _content_length(request)
    content_range = request.headers.get("Content-Range")
    offset = None
    if content_range:
        parsed = parse_content_range(content_range)
        if parsed is None or parsed[0] != session.offset:
            raise BlobUploadInvalid("final chunk out of order", status=416, headers={
                "Location": _location(name, session.id), "Range": _range(session.offset)})
        offset = parsed[0]
    if length or (length is None and request.body_exists):
        # The digest is announced with the bytes: a monolithic push's land where the blob
        # goes, and a failed check leaves the session as the POST made it.
        session = await _append(request, name, session, offset, length, digest)
    return await _complete(request, repo, name, session, digest)


async def get_upload(request: web.Request) -> web.Response:
    name = repository_name(request)
    account = account_of(request)
    await authorize(request, "ecr:UploadLayerPart", account, name)
    session = await _session(request, name)
    headers = _session_headers(name, session)
    del headers["Content-Length"]
    return web.Response(status=204, headers=headers)


async def cancel_upload(request: web.Request) -> web.Response:
    name = repository_name(request)
    account = account_of(request)
    await authorize(request, "ecr:UploadLayerPart", account, name)
    session = await _session(request, name)
    try:
        await request.app[BLOBS].cancel_upload(session.id)
    except UploadUnknownError:
        raise BlobUploadUnknown("blob upload unknown to registry") from None
    return web.Response(status=204)
