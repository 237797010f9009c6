"""The ECR layer data plane: the same upload sessions and links the /v2/ API uses.

The sessions are the /v2/ API's, with the same guarantees: a part or a completion that comes
after another request completed or cancelled the upload answers UploadNotFoundException, and
open sessions are capped per repository and per principal (LimitExceededException).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, AsyncIterator

from registry.appkeys import BLOBS, CONFIG, METRICS, PULL_PROTECTION
from registry.ecr.call import ECRCall
from registry.ecr.errors import (
    EmptyUploadException, InvalidLayerException, InvalidLayerPartException,
    LayerAlreadyExistsException, LayerInaccessibleException, LayersNotFoundException,
    LimitExceededException,
    UploadNotFoundException,
)
from registry.oci.digests import parse_digest
from registry.oci.errors import OCIError
from registry.publishing import store_blob
from registry.storage.base import (
    DigestMismatchError, OffsetMismatchError, TooManyUploadsError, UploadUnknownError,
)
from registry.storage.sessionindex import limit_message, session_limits

PART_SIZE = 10 * 1024 * 1024


def _upload_id(session_id: str) -> str:
    return str(uuid.UUID(hex=session_id))


def _session_id(upload_id: str) -> str:
    return upload_id.replace("-", "").lower()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _not_found(upload_id: str, name: str) -> UploadNotFoundException:
    return UploadNotFoundException(
        f"Upload with id '{upload_id}' is not found in repository '{name}'")


async def _session(call: ECRCall, name: str):
    upload_id = call.params["uploadId"]
    try:
        session = await call.blobs.get_upload(_session_id(upload_id))
    except UploadUnknownError:
        session = None
    if session is None or session.repository != f"{call.account}/{name}":
        raise _not_found(upload_id, name)
    return session


async def initiate_layer_upload(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:InitiateLayerUpload", name)
    await call.repository(name)
    try:
        session = await call.blobs.create_upload(f"{call.account}/{name}", "sha256",
                                                 owner=call.principal.arn,
                                                 limits=session_limits(call.config))
    except TooManyUploadsError as exc:
        call.app[METRICS].uploads_refused.labels(scope=exc.scope).inc()
        raise LimitExceededException(
            limit_message(exc, call.config.uploads.stale_after_seconds)) from None
    return {"uploadId": _upload_id(session.id), "partSize": PART_SIZE}


async def upload_layer_part(call: ECRCall) -> dict[str, Any]:
    p = call.params
    name = p["repositoryName"]
    await call.authorize("ecr:UploadLayerPart", name)
    await call.repository(name)
    session = await _session(call, name)
    data = base64.b64decode(p["layerPartBlob"])
    first, last = p["partFirstByte"], p["partLastByte"]
    if last < first or last - first + 1 != len(data):
        raise InvalidLayerPartException(
            f"The layer part size is not valid: partFirstByte {first}, partLastByte {last}, "
            f"blob of {len(data)} bytes")
    try:
        session = await call.blobs.append(session.id, _one(data), offset=first, length=len(data))
    except OffsetMismatchError as exc:
        raise InvalidLayerPartException(
            f"The part's first byte {first} does not follow the last byte received "
            f"{exc.offset - 1}") from None
    except UploadUnknownError:
        raise _not_found(p["uploadId"], name) from None
    return {"registryId": call.account, "repositoryName": name, "uploadId": p["uploadId"],
            "lastByteReceived": session.offset - 1}


async def complete_layer_upload(call: ECRCall) -> dict[str, Any]:
    p = call.params
    name = p["repositoryName"]
    await call.authorize("ecr:CompleteLayerUpload", name)
    repo = await call.repository(name)
    session = await _session(call, name)
    try:
        digest = parse_digest(p["layerDigests"][0])
    except OCIError:
        raise InvalidLayerException("The layer digest is not a valid digest") from None
    if session.offset == 0:
        raise EmptyUploadException(f"The upload with id '{p['uploadId']}' has no content")
    if await call.metadata.linked_blob_size(repo.id, str(digest)) is not None:
        try:
            await call.blobs.cancel_upload(session.id)
        except UploadUnknownError:
            raise _not_found(p["uploadId"], name) from None
        raise LayerAlreadyExistsException(
            f"The layer with digest '{digest}' already exists in the repository with name "
            f"'{name}' in registry with id '{repo.account}'")
    try:
        staged = await call.blobs.finish_upload(session.id, digest)
    except DigestMismatchError as exc:
        raise InvalidLayerException(f"The calculated digest does not match: {exc}") from None
    except UploadUnknownError:
        raise _not_found(p["uploadId"], name) from None
    await store_blob(call.metadata, call.blobs, repo.id, staged)
    return {"registryId": repo.account, "repositoryName": name, "uploadId": p["uploadId"],
            "layerDigest": str(digest)}


async def batch_check_layer_availability(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:BatchCheckLayerAvailability", name)
    repo = await call.repository(name)
    layers, failures = [], []
    for text in call.params["layerDigests"]:
        try:
            digest = str(parse_digest(text))
        except OCIError:
            failures.append({"layerDigest": text, "failureCode": "InvalidLayerDigest",
                             "failureReason": "Invalid layer digest"})
            continue
        size = await call.metadata.linked_blob_size(repo.id, digest)
        if size is None:
            failures.append({"layerDigest": digest, "failureCode": "MissingLayerDigest",
                             "failureReason": "Requested layer not found"})
        else:
            layers.append({"layerDigest": digest, "layerAvailability": "AVAILABLE",
                           "layerSize": size,
                           "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"})
    return {"layers": layers, "failures": failures}


async def get_download_url_for_layer(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:GetDownloadUrlForLayer", name)
    repo = await call.repository(name)
    text = call.params["layerDigest"]
    try:
        digest = str(parse_digest(text))
    except OCIError:
        raise LayersNotFoundException(f"The layer digest '{text[:200]}' is not valid") from None
    if await call.metadata.linked_blob_size(repo.id, digest) is None:
        raise LayersNotFoundException(
            f"Layer with digest '{digest}' does not exist in the repository with name '{name}' "
            f"in the registry with id '{repo.account}'")
    blocked = await call.app[PULL_PROTECTION].blocked_layer(repo, digest)
    if blocked is not None:
        # The operation's own modelled error for a layer that may not be handed out;
        # AccessDenied would send the caller looking for a policy that is not the cause.
        raise LayerInaccessibleException(
            f"The layer with digest '{digest}' is not available: it belongs only to images "
            f"blocked by pull protection ({blocked.reason()})")
    storage = call.app[CONFIG].storage
    # As ECR: a presigned URL of the object store where there is one; else Berth's own.
    url = await call.app[BLOBS].download_url(parse_digest(digest),
                                             expires_seconds=storage.presign_seconds)
    if url is None:
        url = f"{call.request.scheme}://{call.host}/v2/{name}/blobs/{digest}"
    return {"downloadUrl": url, "layerDigest": digest}


OPERATIONS = {
    "InitiateLayerUpload": initiate_layer_upload,
    "UploadLayerPart": upload_layer_part,
    "CompleteLayerUpload": complete_layer_upload,
    "BatchCheckLayerAvailability": batch_check_layer_availability,
    "GetDownloadUrlForLayer": get_download_url_for_layer,
}
