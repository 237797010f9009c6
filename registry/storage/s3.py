"""S3 blob store: content-addressed objects and resumable multipart uploads in one bucket.

Keys (under ``prefix``)::

    blobs/<alg>/<hex>                  a published blob (and, until ``publish`` completes it,
                                       the multipart upload of an announced session)
    uploads/<id>/session.json          the session (see ``_Session``), rewritten at every
                                       chunk end: writing it is a chunk's commit point
    uploads/<id>/tail.<n>              the bytes after the last part (parts are >= 5 MiB)
    uploads/<id>/data                  the multipart upload's object, once completed
    upload-index/<scope>/<key>/<id>    markers counting open sessions for the caps
    quarantine/<alg>/<hex>.<time>      blobs that failed a re-hash

Every node sees every session, and the hash state saved in it (``resumable``) lets any
node continue the hash without reading the bytes back: a chunked push costs one pass over
its bytes wherever its PATCHes land. A chunk's parts get part numbers after the committed
ones, so a body that fails half-way leaves the committed session as it was (parts it
uploaded are never listed when the upload completes; the next chunk overwrites them).
Parts go out from the event loop as the body arrives (``s3_parts``), so a part is never
held in memory when the body's length is known.

Closing: ``finish_upload`` (holding the session's lock) first rewrites the session as
closed, so every later request finds it gone; then it checks the hash and completes the
upload into ``uploads/<id>/data``. ``publish`` copies that object to ``blobs/``
server-side and removes the session. A monolithic push announces its digest with its body
(``BlobStore.append``): its multipart upload is made at the blob's own key, and ``publish``
completes it there, with no copy. Small blobs (a session that never filled a part, and
``stage_bytes``) skip multipart altogether: their bytes are written by ``publish`` in one PUT.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, AsyncIterable, AsyncIterator, Callable, Iterable

from registry.oci.digests import ALGORITHMS, Digest
from registry.storage import resumable
from registry.storage.base import (
    BlobCheck, DigestMismatchError, IncompleteBodyError, OffsetMismatchError, SessionLimits,
    StagedBlob, StorageUnavailableError, StoredBlob, TooManyUploadsError, UploadSession,
    UploadUnknownError,
)
from registry.storage.locks import ProcessLocks, SessionLockProvider
from registry.storage.s3_parts import PartSender
from registry.storage.s3_client import S3_ERRORS, S3Settings, is_missing, make_client, unavailable

MIN_PART = 5 * 1024 * 1024
PARTS_IN_FLIGHT = 2  # parts of a body of unknown length uploading from memory at once
HASH_BATCH = 4 * 1024 * 1024
READ_CHUNK = 1024 * 1024
_SESSION_ID = frozenset("0123456789abcdef")


@dataclass
class _Session:
    repository: str
    algorithm: str
    owner: str
    started_at: float
    offset: int = 0
    upload_id: str | None = None  # the multipart upload (of ``upload_key``)
    upload_key: str | None = None  # None: uploads/<id>/data; else the announced blob's key
    announced: str | None = None  # the digest a closing PUT's body came with (see append)
    parts: list[list[Any]] = field(default_factory=list)  # [number, etag] in order
    tail: str | None = None  # the tail object's name
    tail_size: int = 0
    based: bool = False  # uploads/<id>/data is complete and holds the first bytes
    hash: str | None = None  # base64 resumable state over ``offset`` bytes
    closed: bool = False


@dataclass(frozen=True, slots=True)
class _Staged:
    data: bytes | None  # small: the bytes themselves; else in uploads/<id>/data
    session_id: str | None  # the closed session whose objects go once published
    upload: tuple[str, str, list] | None = None  # (upload id, blob key, parts) to complete


class S3BlobReader:
    """A stored object opened for reading: ranged GETs, streamed."""

    file = None

    def __init__(self, store: "S3BlobStore", key: str, size: int, etag: str) -> None:
        self._store = store
        self._key = key
        self.size = size
        self._etag = etag

    async def chunks(self, offset: int, count: int) -> AsyncIterator[bytes]:
        if count <= 0:
            return
        body = await self._store._call(
            "get_object", Key=self._key, Range=f"bytes={offset}-{offset + count - 1}",
            IfMatch=self._etag)
        stream = body["Body"]
        try:
            while True:
                chunk = await self._store._run(stream.read, READ_CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            stream.close()

    def close(self) -> None:
        pass


class S3BlobStore:
    """``BlobStore`` on an S3 bucket (see the module docstring)."""

    def __init__(self, settings: S3Settings, *, locks: SessionLockProvider | None = None,
                 client: Any = None, executor: ThreadPoolExecutor | None = None) -> None:
        if resumable.new("sha256").__class__ is not resumable.ResumableHash:
            raise RuntimeError("the S3 store needs libcrypto for resumable upload hashes")
        self.settings = settings
        self.bucket = settings.bucket
        self._prefix = settings.prefix
        self._client = client or make_client(settings)
        self._locks = locks or ProcessLocks()
        self._executor = executor or ThreadPoolExecutor(max_workers=16,
                                                        thread_name_prefix="s3io")
        # Multipart uploads live under uploads/ and, when announced, at their blob's key.
        self._sweepable = (self._key("uploads", ""), self._key("blobs", ""))
        self._parts = PartSender(self._client, self.bucket,
                                 presign_seconds=settings.presign_seconds)

    # -- plumbing -----------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return self._prefix + "/".join(parts)

    def _blob_key(self, digest: Digest) -> str:
        return self._key("blobs", digest.algorithm, digest.hex)

    def _session_key(self, session_id: str, name: str = "session.json") -> str:
        return self._key("uploads", session_id, name)

    async def _run(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _call_sync(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._client, operation)(Bucket=self.bucket, **params)
        except S3_ERRORS as exc:
            if is_missing(exc):
                raise FileNotFoundError(params.get("Key", operation)) from None
            raise unavailable(exc) from None

    async def _call(self, operation: str, **params: Any) -> Any:
        return await self._run(lambda: self._call_sync(operation, **params))

    def _delete_quietly(self, *keys: str) -> None:
        if keys:
            try:
                self._client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys], "Quiet": True})
            except S3_ERRORS:
                pass  # left for the sweeper

    # -- blobs --------------------------------------------------------------------------

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return self._call_sync("head_object", Key=self._blob_key(digest))["ContentLength"]
        except FileNotFoundError:
            return None

    async def stat(self, digest: Digest) -> int | None:
        return await self._run(self.blob_size, digest)

    async def open_blob(self, digest: Digest) -> S3BlobReader:
        key = self._blob_key(digest)
        head = await self._call("head_object", Key=key)
        return S3BlobReader(self, key, head["ContentLength"], head["ETag"])

    async def download_url(self, digest: Digest, *, expires_seconds: int) -> str | None:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._blob_key(digest)},
            ExpiresIn=expires_seconds)

    def materialize(self, digest: Digest, dest: Path) -> None:
        response = self._call_sync("get_object", Key=self._blob_key(digest))
        body = response["Body"]
        try:
            with open(dest, "xb") as out:
                while chunk := body.read(8 * READ_CHUNK):
                    out.write(chunk)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        finally:
            body.close()

    async def read_bytes(self, digest: Digest) -> bytes:
        response = await self._call("get_object", Key=self._blob_key(digest))
        return await self._run(response["Body"].read)

    async def stage_bytes(self, data: bytes, digest: Digest) -> StagedBlob:
        actual = hashlib.new(digest.algorithm, data).hexdigest()
        if actual != digest.hex:
            raise DigestMismatchError(f"content hashes to {digest.algorithm}:{actual}")
        return StagedBlob(digest=digest, size=len(data), handle=_Staged(bytes(data), None))

    def publish(self, staged: StagedBlob) -> None:
        handle: _Staged = staged.handle
        target = self._blob_key(staged.digest)
        if handle.data is not None:
            self._call_sync("put_object", Key=target, Body=handle.data)
        elif handle.upload is not None:  # parts sent straight to the blob's key: no copy
            upload_id, key, parts = handle.upload
            self._call_sync("complete_multipart_upload", Key=key, UploadId=upload_id,
                            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                                       for n, e in parts]})
            self._remove_session_objects(handle.session_id)
            return
        else:
            source = {"Bucket": self.bucket, "Key": self._session_key(handle.session_id, "data")}
            if staged.size <= 5 * 1024 ** 3:
                self._call_sync("copy_object", Key=target, CopySource=source)
            else:  # CopyObject's limit: a multipart copy
                try:
                    self._client.copy(source, self.bucket, target)
                except S3_ERRORS as exc:
                    raise unavailable(exc) from None
        self.discard(staged)

    def discard(self, staged: StagedBlob) -> None:
        handle: _Staged = staged.handle
        if handle.upload is not None:
            self._abort_quietly(handle.upload[1], handle.upload[0])
        if handle.session_id is not None:
            self._remove_session_objects(handle.session_id)

    def delete(self, digest: Digest) -> None:
        self._call_sync("delete_object", Key=self._blob_key(digest))

    def _list(self, prefix: str, **extra: Any) -> Iterable[dict]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **extra):
                yield page
        except S3_ERRORS as exc:
            raise unavailable(exc) from None

    def iter_blobs(self) -> Iterable[StoredBlob]:
        for algorithm in ALGORITHMS:
            for page in self._list(self._key("blobs", algorithm, "")):
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[1]
                    yield StoredBlob(Digest(algorithm, name), item["Size"],
                                     item["LastModified"].timestamp())

    def verify(self, digest: Digest, *,
               on_bytes: Callable[[int], None] | None = None) -> BlobCheck | None:
        try:
            response = self._call_sync("get_object", Key=self._blob_key(digest))
        except FileNotFoundError:
            return None
        hasher = hashlib.new(digest.algorithm)
        body, size = response["Body"], 0
        try:
            while chunk := body.read(READ_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        finally:
            body.close()
        return BlobCheck(digest, size, hasher.hexdigest(), response["ETag"])

    def quarantine(self, check: BlobCheck, *, now: float) -> str | None:
        source = self._blob_key(check.digest)
        target = self._key("quarantine", check.digest.algorithm,
                           f"{check.digest.hex}.{int(now)}")
        # RGW 16 ignores CopySourceIfMatch: compare the ETag first as well (a re-push
        # between this check and the delete below is a window S3 cannot close: no
        # conditional delete; the re-pushed blob is then pushed again or reported by fsck).
        try:
            current = self._call_sync("head_object", Key=source)["ETag"]
        except FileNotFoundError:
            return None
        if current != check.version:
            return None
        try:
            self._client.copy_object(Bucket=self.bucket, Key=target,
                                     CopySource={"Bucket": self.bucket, "Key": source},
                                     CopySourceIfMatch=check.version)
        except S3_ERRORS as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if is_missing(exc) or code in ("PreconditionFailed", "412"):
                return None  # deleted or replaced since the check: not ours to move
            raise unavailable(exc) from None
        self._call_sync("delete_object", Key=source)
        return f"s3://{self.bucket}/{target}"

    # -- upload sessions: records and caps -------------------------------------------------

    def _read_session(self, session_id: str) -> _Session:
        _check_id(session_id)
        try:
            response = self._call_sync("get_object", Key=self._session_key(session_id))
            record = _Session(**json.loads(response["Body"].read()))
        except (FileNotFoundError, ValueError, TypeError):
            raise UploadUnknownError(session_id) from None
        if record.closed:
            raise UploadUnknownError(session_id)
        return record

    async def _load(self, session_id: str) -> _Session:
        return await self._run(self._read_session, session_id)

    def _write_session_sync(self, session_id: str, record: _Session) -> None:
        self._call_sync("put_object", Key=self._session_key(session_id),
                        Body=json.dumps(asdict(record)).encode())

    async def _write_session(self, session_id: str, record: _Session) -> None:
        await self._run(self._write_session_sync, session_id, record)

    def _markers(self, session_id: str, repository: str, owner: str) -> list[str]:
        keys = [self._key("upload-index", "repository",
                          urllib.parse.quote(repository, safe=""), session_id)]
        if owner:
            keys.append(self._key("upload-index", "principal",
                                  urllib.parse.quote(owner, safe=""), session_id))
        return keys

    def _count(self, marker: str, limit: int) -> int:
        prefix = marker.rsplit("/", 1)[0] + "/"
        response = self._call_sync("list_objects_v2", Prefix=prefix, MaxKeys=limit + 1)
        return response.get("KeyCount", 0)

    def _check_limits(self, repository: str, owner: str, limits: SessionLimits) -> None:
        markers = self._markers("x", repository, owner)
        checks = [("repository", markers[0], limits.per_repository)]
        if owner:
            checks.append(("principal", markers[1], limits.per_owner))
        for scope, marker, limit in checks:
            if limit and self._count(marker, limit) >= limit:
                raise TooManyUploadsError(scope, limit)

    def _upload_session(self, session_id: str, record: _Session) -> UploadSession:
        return UploadSession(session_id, record.repository, record.algorithm,
                             record.started_at, record.offset, record.owner)

    async def create_upload(self, repository: str, algorithm: str, *, owner: str = "",
                            limits: SessionLimits | None = None) -> UploadSession:
        session_id = uuid.uuid4().hex
        record = _Session(repository, algorithm, owner, time.time(),
                          hash=_encode(resumable.new(algorithm)))

        def create() -> None:
            if limits is not None:
                self._check_limits(repository, owner, limits)
            self._write_session_sync(session_id, record)
            for marker in self._markers(session_id, repository, owner):
                self._call_sync("put_object", Key=marker, Body=b"")

        await self._run(create)
        return self._upload_session(session_id, record)

    async def get_upload(self, session_id: str) -> UploadSession:
        return self._upload_session(session_id, await self._load(session_id))

    # -- upload sessions: bytes ---------------------------------------------------------------

    async def append(self, session_id: str, chunks: AsyncIterable[bytes], *,
                     offset: int | None, length: int | None,
                     digest: Digest | None = None) -> UploadSession:
        _check_id(session_id)
        async with self._locks.hold(session_id):
            record = await self._load(session_id)
            if offset is not None and offset != record.offset:
                raise OffsetMismatchError(record.offset)
            announced = digest if (digest is not None and record.offset == 0
                                   and record.upload_id is None
                                   and digest.algorithm == record.algorithm) else None
            async with self._parts.session() as http:
                writer = _ChunkWriter(self, session_id, record, http, announced)
                try:
                    await writer.prepare()
                    received = await writer.receive(chunks, length)
                    if length is not None and received != length:
                        raise IncompleteBodyError(f"received {received} of {length} bytes")
                    updated = await writer.commit()
                except BaseException:
                    await asyncio.shield(writer.abandon())
                    raise
            return self._upload_session(session_id, updated)

    async def finish_upload(self, session_id: str, digest: Digest) -> StagedBlob:
        _check_id(session_id)
        async with self._locks.hold(session_id):
            record = await self._load(session_id)
            # The closing point: from here every other request finds no session.
            await self._write_session(session_id, replace(record, closed=True))
            if record.upload_key is not None:
                staged = await self._finish_announced(session_id, record, digest)
            else:
                staged = await self._finish_session(session_id, record, digest)
            for marker in self._markers(session_id, record.repository, record.owner):
                await self._run(self._delete_quietly, marker)
            return staged

    async def _finish_session(self, session_id: str, record: _Session,
                              digest: Digest) -> StagedBlob:
        current = record
        try:
            current, data = await self._consolidate(session_id, record)
            if digest.algorithm == record.algorithm:
                actual = resumable.restore(record.algorithm,
                                           base64.b64decode(record.hash)).hexdigest()
            else:  # a rare client: hash the bytes again in the digest's algorithm
                actual = await self._rehash(session_id, data, digest.algorithm)
            if actual != digest.hex:
                raise DigestMismatchError(f"content hashes to {digest.algorithm}:{actual}")
        except DigestMismatchError:
            if record.announced:
                await asyncio.shield(self._empty(session_id, current))
            else:  # bad input changes nothing: the session goes back, open, as it now is
                await asyncio.shield(self._write_session(session_id, current))
            raise
        except BaseException:
            await asyncio.shield(self._write_session(session_id, current))
            raise
        return StagedBlob(digest=digest, size=record.offset,
                          handle=_Staged(data, session_id), session_id=session_id)

    async def _empty(self, session_id: str, record: _Session) -> None:
        """Put an announced session back as its POST made it (``BlobStore.append``)."""
        if record.upload_id is not None:
            await self._run(self._abort_quietly,
                            record.upload_key or self._session_key(session_id, "data"),
                            record.upload_id)
        stale = [self._session_key(session_id, name)
                 for name in (record.tail, "data" if record.based else None) if name]
        await self._run(self._delete_quietly, *stale)
        await self._write_session(session_id, _Session(
            record.repository, record.algorithm, record.owner, record.started_at,
            hash=_encode(resumable.new(record.algorithm))))

    async def _finish_announced(self, session_id: str, record: _Session,
                                digest: Digest) -> StagedBlob:
        """Close a session whose parts went to the announced blob's key: check the hash,
        send the tail as the last part; ``publish`` completes the upload there. Bytes that
        fail the check can never be completed at that key, so the session is emptied: the
        closing request that brought them changes nothing."""
        actual = resumable.restore(record.algorithm, base64.b64decode(record.hash)).hexdigest()
        if record.upload_key != self._blob_key(digest) or actual != digest.hex:
            await asyncio.shield(self._empty(session_id, record))
            raise DigestMismatchError(f"content hashes to {record.algorithm}:{actual}")
        try:
            async with self._parts.session() as http:
                writer = _ChunkWriter(self, session_id, record, http)
                await writer.prepare()
                parts = await writer.last_part()
        except BaseException:
            await asyncio.shield(self._write_session(session_id, record))
            raise
        return StagedBlob(digest=digest, size=record.offset, session_id=session_id,
                          handle=_Staged(None, session_id,
                                         (record.upload_id, record.upload_key, parts)))

    async def _consolidate(self, session_id: str,
                           record: _Session) -> tuple[_Session, bytes | None]:
        """Bring the session's bytes into one place: memory (small) or the completed
        ``data`` object. Returns the session as it now is, and the bytes when small."""
        if record.upload_id is None and not record.based:
            return record, await self._tail_bytes(session_id, record)
        if record.upload_id is None and not record.tail:
            return record, None  # all in ``data`` already
        async with self._parts.session() as http:
            writer = _ChunkWriter(self, session_id, record, http)
            await writer.prepare()
            if writer.upload_id is None:  # a small ``data`` plus the tail: all in memory
                return record, bytes(writer.buffer)
            return await writer.complete(), None

    async def _tail_bytes(self, session_id: str, record: _Session) -> bytes:
        if not record.tail:
            return b""
        response = await self._call("get_object", Key=self._session_key(session_id,
                                                                        record.tail))
        return await self._run(response["Body"].read)

    async def _rehash(self, session_id: str, data: bytes | None, algorithm: str) -> str:
        if data is not None:
            return hashlib.new(algorithm, data).hexdigest()

        def digest_object() -> str:
            response = self._call_sync("get_object", Key=self._session_key(session_id, "data"))
            hasher = hashlib.new(algorithm)
            while chunk := response["Body"].read(8 * READ_CHUNK):
                hasher.update(chunk)
            return hasher.hexdigest()

        return await self._run(digest_object)

    async def cancel_upload(self, session_id: str) -> None:
        async with self._locks.hold(session_id):
            record = await self._load(session_id)
            await self._write_session(session_id, replace(record, closed=True))
        await self._run(self._remove_session, session_id, record)

    def _remove_session(self, session_id: str, record: _Session) -> None:
        if record.upload_id is not None:
            self._abort_quietly(record.upload_key or self._session_key(session_id, "data"),
                                record.upload_id)
        self._delete_quietly(*self._markers(session_id, record.repository, record.owner))
        self._remove_session_objects(session_id)

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                UploadId=upload_id)
        except S3_ERRORS:
            pass  # gone already, or left for the sweeper

    def _remove_session_objects(self, session_id: str) -> None:
        keys = [item["Key"] for page in self._list(self._session_key(session_id, ""))
                for item in page.get("Contents", [])]
        session = self._session_key(session_id)
        # The record last: a crash in between leaves a record the sweeper still finds.
        self._delete_quietly(*[k for k in keys if k != session])
        self._delete_quietly(session)

    def list_uploads(self) -> Iterable[UploadSession]:
        for page in self._list(self._key("uploads", ""), Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                session_id = common["Prefix"].rstrip("/").rsplit("/", 1)[1]
                try:
                    yield self._upload_session(session_id, self._read_session(session_id))
                except UploadUnknownError:
                    continue

    def discard_upload(self, session_id: str) -> bool:
        try:
            with self._locks.try_hold(session_id) as held:
                if not held:
                    return False
                record = self._read_session(session_id)
                self._write_session_sync(session_id, replace(record, closed=True))
        except UploadUnknownError:
            return True
        self._remove_session(session_id, record)
        return True

    def sweep_leftovers(self, *, older_than: float) -> list[str]:
        """Closed sessions never published or cleaned (a crash after the closing point),
        sessions without a record (a crash inside ``create_upload``), multipart uploads no
        session names (a crash before a chunk committed)."""
        removed = []
        live_uploads = set()
        for page in self._list(self._key("uploads", ""), Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                session_id = common["Prefix"].rstrip("/").rsplit("/", 1)[1]
                objects = [item for p in self._list(common["Prefix"])
                           for item in p.get("Contents", [])]
                newest = max((o["LastModified"].timestamp() for o in objects), default=0.0)
                record = self._raw_session(session_id)
                if record is not None and not record.closed:
                    if record.upload_id:
                        live_uploads.add(record.upload_id)
                    continue
                if newest >= older_than:
                    if record is not None and record.upload_id:
                        live_uploads.add(record.upload_id)
                    continue
                if record is not None:
                    self._remove_session(session_id, record)
                else:
                    self._remove_session_objects(session_id)
                removed.append(session_id)
        removed += self._abort_orphan_uploads(live_uploads, older_than)
        return removed

    def _raw_session(self, session_id: str) -> _Session | None:
        try:
            response = self._call_sync("get_object", Key=self._session_key(session_id))
            return _Session(**json.loads(response["Body"].read()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _abort_orphan_uploads(self, live: set[str], older_than: float) -> list[str]:
        aborted = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._prefix):
                for upload in page.get("Uploads", []):
                    if not upload["Key"].startswith(self._sweepable) or \
                            upload["UploadId"] in live or \
                            upload["Initiated"].timestamp() >= older_than:
                        continue
                    try:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        aborted.append(f"multipart:{upload['Key']}")
                    except S3_ERRORS as exc:
                        if not is_missing(exc):
                            raise unavailable(exc) from None
        except S3_ERRORS as exc:
            raise unavailable(exc) from None
        return aborted


def _check_id(session_id: str) -> None:
    """Session ids are 32 lowercase hex digits (uuid4().hex); anything else names none."""
    if len(session_id) != 32 or not set(session_id) <= _SESSION_ID:
        raise UploadUnknownError(session_id)


def _encode(hasher: Any) -> str:
    return base64.b64encode(resumable.state_of(hasher)).decode()


class _ChunkWriter:
    """One chunk's worth of work on a held session: its bytes go into parts of the
    session's multipart upload (started on the first full part) and a new tail; nothing
    is visible until ``commit`` writes the session record.

    When the body's length is known, parts are streamed to S3 while the body arrives
    (``_stream``): each part's size is fixed before it starts (``part_size``, or all
    that is left when that is under ``part_size + MIN_PART``), and what remains under
    ``MIN_PART`` becomes the tail. A body of unknown length is cut into ``part_size`` parts
    in memory, at most ``PARTS_IN_FLIGHT`` of them uploading at once."""

    def __init__(self, store: S3BlobStore, session_id: str, record: _Session,
                 http: Any, announced: Digest | None = None) -> None:
        self.store = store
        self.session_id = session_id
        self.record = record
        self.http = http  # the aiohttp session the parts go through
        self.buffer = bytearray()
        self.upload_id = record.upload_id
        self.upload_key = record.upload_key
        self.announced = announced  # a new upload goes to this blob's key
        self.created_upload: str | None = None
        self.parts = [list(p) for p in record.parts]
        self.next_part = (record.parts[-1][0] + 1) if record.parts else 1
        self.hasher = resumable.restore(record.algorithm, base64.b64decode(record.hash))
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.hashing: asyncio.Future | None = None
        self.uploads: list[asyncio.Future] = []
        self.received = 0
        self.body_error: BaseException | None = None
        self.new_tail: str | None = None

    @property
    def data_key(self) -> str:
        return self.store._session_key(self.session_id, "data")

    @property
    def part_key(self) -> str:
        """The key of the multipart upload the parts go to."""
        return self.upload_key or self.data_key

    async def prepare(self) -> None:
        """Start from the committed state: the tail's bytes; a completed ``data`` object
        (after a digest check in another algorithm) becomes the new upload's first part."""
        record = self.record
        if record.based:
            size_of_base = record.offset - record.tail_size
            if size_of_base >= MIN_PART:
                await self._ensure_upload()
                number = self.next_part
                result = await self.store._call(
                    "upload_part_copy", Key=self.data_key, UploadId=self.upload_id,
                    PartNumber=number, CopySource={"Bucket": self.store.bucket,
                                                   "Key": self.data_key})
                self.parts.append([number, result["CopyPartResult"]["ETag"]])
                self.next_part += 1
            else:
                response = await self.store._call("get_object", Key=self.data_key)
                self.buffer += await self.store._run(response["Body"].read)
        self.buffer += await self.store._tail_bytes(self.session_id, record)

    async def _ensure_upload(self) -> None:
        if self.upload_id is None:
            if self.announced is not None:
                self.upload_key = self.store._blob_key(self.announced)
            result = await self.store._call("create_multipart_upload", Key=self.part_key)
            self.upload_id = self.created_upload = result["UploadId"]

    async def receive(self, chunks: AsyncIterable[bytes], length: int | None) -> int:
        """Take the body; returns how many bytes it had. The hash covers them all once
        this returns, and every part started is uploaded."""
        source = aiter(chunks)
        if length is not None:
            await self._stream(source, length)
        part_size = self.store.settings.part_size
        async for chunk in source:  # unknown length, or the tail of a known one
            await self._take(chunk)
            self.buffer += chunk
            while len(self.buffer) >= part_size:
                await self._start_part(bytes(self.buffer[:part_size]), part_size)
                del self.buffer[:part_size]
        await self._hash_pending()
        if self.hashing is not None:
            await self.hashing
        if self.uploads:
            await asyncio.gather(*self.uploads)
        return self.received

    async def _take(self, chunk: bytes) -> None:
        """Count a chunk of the body and queue it for hashing, a batch at a time."""
        self.pending.append(chunk)
        self.pending_size += len(chunk)
        self.received += len(chunk)
        if self.pending_size >= HASH_BATCH:
            await self._hash_pending()

    async def _hash_pending(self) -> None:
        if not self.pending:
            return
        if self.hashing is not None:
            await self.hashing  # in order: one batch at a time
        batch, self.pending, self.pending_size = self.pending, [], 0
        hasher = self.hasher
        self.hashing = asyncio.get_running_loop().run_in_executor(
            self.store._executor, lambda: [hasher.update(c) for c in batch])

    async def _stream(self, source: AsyncIterator[bytes], length: int) -> None:
        part_size = self.store.settings.part_size
        carry = b""  # bytes read past the end of the previous part
        while True:
            left = len(self.buffer) + len(carry) + length - self.received
            if left < MIN_PART:
                break
            size = left if left < part_size + MIN_PART else part_size
            done = asyncio.Event()
            leftover: list[bytes] = []
            body = self._part_body(source, size, carry, leftover, done)
            await self._start_part(body, size)
            waiter = asyncio.ensure_future(done.wait())
            try:
                await asyncio.wait([waiter, self.uploads[-1]],
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if self.body_error is not None:
                raise self.body_error
            if not done.is_set():  # S3 failed the part before taking all of it
                await self.uploads[-1]
                raise StorageUnavailableError("S3 ended a part early")
            carry = leftover[0] if leftover else b""
        if carry:
            self.buffer += carry

    async def _part_body(self, source: AsyncIterator[bytes], size: int, carry: bytes,
                         leftover: list[bytes], done: asyncio.Event) -> AsyncIterator[bytes]:
        """The part's bytes: the buffered tail, then the body up to ``size``; what is read
        past the end goes to ``leftover``. A failing body is kept in ``body_error``."""
        sent = 0
        try:
            if self.buffer:
                head, self.buffer = bytes(self.buffer), bytearray()
                sent += len(head)
                yield head
            if carry:
                sent += len(carry)  # already hashed
                yield carry
            while sent < size:
                try:
                    chunk = await anext(source)
                except StopAsyncIteration:
                    raise IncompleteBodyError(
                        f"received {self.received} bytes, fewer than announced") from None
                await self._take(chunk)
                if sent + len(chunk) > size:
                    cut = size - sent
                    leftover.append(chunk[cut:])
                    chunk = chunk[:cut]
                sent += len(chunk)
                yield chunk
            done.set()
        except GeneratorExit:  # the HTTP request stopped taking bytes: its task says why
            raise
        except BaseException as exc:
            self.body_error = exc
            raise

    async def _start_part(self, body: Any, size: int) -> None:
        await self._ensure_upload()
        while len([u for u in self.uploads if not u.done()]) >= PARTS_IN_FLIGHT:
            await asyncio.wait(self.uploads, return_when=asyncio.FIRST_COMPLETED)
        for upload in self.uploads:
            if upload.done() and upload.exception() is not None:
                raise upload.exception()
        number = self.next_part
        self.next_part += 1
        entry = [number, None]
        self.parts.append(entry)

        async def upload() -> None:
            entry[1] = await self.store._parts.put(self.http, self.part_key, self.upload_id,
                                                   number, body, size)

        self.uploads.append(asyncio.ensure_future(upload()))

    async def commit(self) -> _Session:
        tail_size = len(self.buffer)
        if tail_size:
            self.new_tail = f"tail.{uuid.uuid4().hex}"
            await self.store._call("put_object", Key=self.store._session_key(
                self.session_id, self.new_tail), Body=bytes(self.buffer))
        updated = replace(self.record, offset=self.record.offset + self.received,
                          upload_id=self.upload_id, upload_key=self.upload_key,
                          announced=(str(self.announced) if self.announced is not None
                                     else self.record.announced),
                          parts=self.parts,
                          tail=self.new_tail if tail_size else None, tail_size=tail_size,
                          based=False,
                          hash=_encode(self.hasher))
        await self.store._write_session(self.session_id, updated)
        self._forget_old_tail(updated)
        return updated

    async def last_part(self) -> list[list[Any]]:
        """Upload what is buffered as the last part; returns every part, in order."""
        await self._ensure_upload()
        if self.buffer or not self.parts:
            await self._start_part(bytes(self.buffer), len(self.buffer))
            self.buffer.clear()
        if self.uploads:
            await asyncio.gather(*self.uploads)
        return self.parts

    async def complete(self) -> _Session:
        """Upload what is buffered as the last part and complete the upload into ``data``;
        the session then holds its bytes there (``based``)."""
        await self.last_part()
        await self.store._call(
            "complete_multipart_upload", Key=self.data_key, UploadId=self.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in self.parts]})
        updated = replace(self.record, upload_id=None, parts=[], tail=None, tail_size=0,
                          based=True)
        self._forget_old_tail(updated)
        return updated

    def _forget_old_tail(self, updated: _Session) -> None:
        old = self.record.tail
        if old and old != updated.tail:
            self.store._executor.submit(self.store._delete_quietly,
                                        self.store._session_key(self.session_id, old))

    async def abandon(self) -> None:
        """The chunk failed: stop its part uploads and hashing; an upload it created is
        aborted (parts it sent to an older upload are never listed, see the module)."""
        for upload in self.uploads:
            upload.cancel()
        for future in [self.hashing, *self.uploads]:
            if future is not None:
                await asyncio.gather(future, return_exceptions=True)
        if self.created_upload is not None:
            try:
                await self.store._call("abort_multipart_upload", Key=self.part_key,
                                       UploadId=self.created_upload)
            except Exception:  # noqa: BLE001 - the sweeper aborts it later
                pass
