"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>.

A blob is readable in a repository only through that repository's link (DESIGN: pull), so a
digest that exists elsewhere is 404 here. Small blobs come from the in-process cache; large
ones go out by sendfile.
"""

from __future__ import annotations

from aiohttp import web

from registry.appkeys import BLOB_CACHE, BLOBS, CONFIG, METADATA
from registry.auth.authorize import authorize
from registry.oci.context import account_of, existing_repository, repository_name
from registry.oci.digests import parse_digest
from registry.oci.errors import BlobUnknown, SizeInvalid
from registry.oci.ranges import Unsatisfiable, parse_range


def _headers(digest: str, size: int) -> dict[str, str]:
    return {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream", "ETag": f'"{digest}"',
            "Cache-Control": "max-age=31536000"}


async def _locate(request: web.Request, action: str) -> tuple[int, str, int]:
    """Return (repository id, digest, size) of a blob linked into the repository."""
    name = repository_name(request)
    digest = parse_digest(request.match_info["digest"])
    account = account_of(request)
    await authorize(request, action, account, name)
    repo = await existing_repository(request, account, name)
    size = await request.app[METADATA].linked_blob_size(repo.id, str(digest))
    if size is None:
        raise BlobUnknown(f"blob unknown to registry: {digest}", detail={"digest": str(digest)})
    return repo.id, str(digest), size


async def head_blob(request: web.Request) -> web.Response:
    repo_id, digest, size = await _locate(request, "ecr:BatchCheckLayerAvailability")
    metadata = request.app[METADATA]
    # A client that finds the blob here will reference it from a manifest soon: renew the
    # link's GC grace window so a concurrent collection cannot take it (cheap: only when old).
    age = await metadata.blob_link_age(repo_id, digest)
    if age is not None and age > request.app[CONFIG].gc.grace_seconds / 2:
        await metadata.touch_blob_link(repo_id, digest)
    headers = _headers(digest, size)
    headers["Content-Length"] = str(size)
    return web.Response(status=200, headers=headers)


async def get_blob(request: web.Request) -> web.StreamResponse:
    _, digest, size = await _locate(request, "ecr:GetDownloadUrlForLayer")
    try:
        selected = parse_range(request.headers.get("Range"), size)
    except Unsatisfiable:
        raise SizeInvalid("requested range not satisfiable", status=416,
                          headers={"Content-Range": f"bytes */{size}"}) from None
    headers = _headers(digest, size)
    config = request.app[CONFIG]
    blobs = request.app[BLOBS]
    parsed = parse_digest(digest)
    if size <= config.limits.small_blob_max_bytes:
        cache = request.app[BLOB_CACHE]
        data = cache.get(digest)
        if data is None:
            try:
                data = await blobs.read_bytes(parsed)
            except FileNotFoundError:
                raise BlobUnknown(f"blob unknown to registry: {digest}") from None
            if not cache.put(digest, data):  # corrupt on disk: never serve it
                raise BlobUnknown(f"blob unknown to registry: {digest}")
        if selected is None:
            return web.Response(body=data, headers=headers)
        first, last = selected
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return web.Response(status=206, body=data[first:last + 1], headers=headers)
    path = blobs.local_path(parsed)
    if path is None or await blobs.stat(parsed) is None:
        raise BlobUnknown(f"blob unknown to registry: {digest}")
    # FileResponse applies the (already validated) Range itself and answers 206.
    return web.FileResponse(path, headers=headers, chunk_size=1024 * 1024)


async def delete_blob(request: web.Request) -> web.Response:
    name = repository_name(request)
    digest = parse_digest(request.match_info["digest"])
    account = account_of(request)
    await authorize(request, "ecr:BatchDeleteImage", account, name)
    repo = await existing_repository(request, account, name)
    # Unlink from this repository only; storage is reclaimed by garbage collection.
    if not await request.app[METADATA].unlink_blob(repo.id, str(digest)):
        raise BlobUnknown(f"blob unknown to registry: {digest}")
    return web.Response(status=202, headers={"Content-Length": "0"})
