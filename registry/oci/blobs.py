"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>.

A blob is readable in a repository only through that repository's link (DESIGN: pull), so a
digest that exists elsewhere is 404 here. Small blobs come from the in-process cache; large
ones go out by sendfile (or streamed, from a remote store); both follow one Range selection (``registry.oci.ranges``).
"""

from __future__ import annotations

from aiohttp import web

from registry.appkeys import BLOB_CACHE, BLOBS, CONFIG, METADATA, PULL_PROTECTION
from registry.auth.authorize import authorize
from registry.oci.context import account_of, existing_repository, repository_name
from registry.oci.digests import parse_digest
from registry.metadata.models import StillReferencedError
from registry.oci.errors import BlobUnknown, SizeInvalid, Unsupported
from registry.oci.blob_slice import BlobSlice
from registry.oci.ranges import Unsatisfiable, parse_range


def _headers(digest: str, size: int) -> dict[str, str]:
    return {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream", "ETag": f'"{digest}"',
            "Cache-Control": "max-age=31536000"}


async def _locate(request: web.Request, action: str) -> tuple[int, str, int]:
    """Return (repository id, digest, size) of a blob linked into the repository.

    Raises:
        BlobUnknown; Denied for a download (GET) of a layer that only images blocked by pull
        protection use: a client holding the digests must not skip the manifest's check.
    """
    name = repository_name(request)
    digest = parse_digest(request.match_info["digest"])
    account = account_of(request)
    await authorize(request, action, account, name)
    repo = await existing_repository(request, account, name)
    size = await request.app[METADATA].linked_blob_size(repo.id, str(digest))
    if size is None:
        raise BlobUnknown(f"blob unknown to registry: {digest}", detail={"digest": str(digest)})
    if action == "ecr:GetDownloadUrlForLayer":  # a download, not HEAD's existence check
        await request.app[PULL_PROTECTION].check_layer(repo, str(digest))
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
    headers = _headers(digest, size)
    try:
        # One range selection for both paths below, so they answer alike (ranges.py).
        selected = parse_range(request.headers.get("Range"), size,
                               if_range=request.headers.get("If-Range"), etag=headers["ETag"])
    except Unsatisfiable:
        raise SizeInvalid("requested range not satisfiable", status=416,
                          headers={"Content-Range": f"bytes */{size}"}) from None
    first, last = selected if selected is not None else (0, size - 1)
    status = 200 if selected is None else 206
    if selected is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    config = request.app[CONFIG]
    blobs = request.app[BLOBS]
    parsed = parse_digest(digest)
    if config.storage.pull_redirect:
        # The bytes go from the object store to the client directly (the client sends
        # its Range there again); stores without direct URLs answer None.
        url = await blobs.download_url(parsed, expires_seconds=config.storage.presign_seconds)
        if url is not None:
            return web.Response(status=307, headers={
                "Location": url, "Docker-Content-Digest": digest, "Content-Length": "0",
                "Cache-Control": "no-store"})
    if size <= config.limits.small_blob_max_bytes:
        try:  # verified when read from disk: a corrupt file is answered as missing
            data = await request.app[BLOB_CACHE].read(digest, lambda: blobs.read_bytes(parsed))
        except FileNotFoundError:
            raise BlobUnknown(f"blob unknown to registry: {digest}") from None
        return web.Response(status=status, body=data[first:last + 1], headers=headers)
    try:
        reader = await blobs.open_blob(parsed)
    except FileNotFoundError:
        raise BlobUnknown(f"blob unknown to registry: {digest}") from None
    return BlobSlice(reader, offset=first, count=last - first + 1, status=status,
                     headers=headers)


async def delete_blob(request: web.Request) -> web.Response:
    name = repository_name(request)
    digest = parse_digest(request.match_info["digest"])
    account = account_of(request)
    await authorize(request, "ecr:BatchDeleteImage", account, name)
    repo = await existing_repository(request, account, name)
    # Unlink from this repository only; storage is reclaimed by garbage collection.
    try:
        unlinked = await request.app[METADATA].unlink_unreferenced_blob(repo.id, str(digest))
    except StillReferencedError as exc:
        # Unlinking would break an image. OCI has no "still referenced" code: 405 UNSUPPORTED
        # is what the spec and Distribution answer for a delete the registry will not do, so
        # clients already handle it; the message says which manifest holds the blob.
        raise Unsupported(
            f"blob {digest} is referenced by manifest {exc.referenced_by[0]} in repository "
            f"'{name}': delete that image first", status=405,
            detail={"digest": str(digest), "manifests": exc.referenced_by[:100]}) from None
    if not unlinked:
        raise BlobUnknown(f"blob unknown to registry: {digest}")
    return web.Response(status=202, headers={"Content-Length": "0"})
