"""Filesystem blob store: content-addressed files plus upload sessions on local disk.

Uploads stream into ``uploads/<id>/data``; each process keeps the running hash of the
sessions it is serving, and recomputes it from disk when a chunk arrives at a process that
does not have it (after a restart, or on another worker), so sessions survive restarts and
any worker can continue any session. Finishing fsyncs the data; ``publish`` renames it into
``blobs/`` and fsyncs the directory, so a crash never leaves a partial file under ``blobs/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterable, Iterable

from registry.oci.digests import ALGORITHMS, Digest
from registry.storage import paths
from registry.storage.base import (
    DigestMismatchError, IncompleteBodyError, OffsetMismatchError, StagedBlob, StoredBlob,
    UploadSession, UploadUnknownError,
)
from registry.storage.syncio import fsync_dir, start_writeback, write_durably

log = logging.getLogger(__name__)

WRITE_BATCH = 4 * 1024 * 1024  # bytes handed to the hashing and writing threads at once
IOV_BATCH = 512  # chunks per writev call (IOV_MAX is 1024 on Linux)
HASH_READ = 8 * 1024 * 1024


@dataclass
class _Running:
    """The hash of a session's first ``offset`` bytes, kept by the serving process."""

    offset: int
    hasher: "hashlib._Hash"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _hash_batch(hasher: "hashlib._Hash", batch: list[bytes]) -> None:
    for chunk in batch:
        hasher.update(chunk)


def _write_batch(fd: int, batch: list[bytes], offset: int) -> None:
    """Write the chunks in order (writev, at most IOV_BATCH at a time) and start writeback."""
    total = 0
    for first in range(0, len(batch), IOV_BATCH):
        views = [memoryview(chunk) for chunk in batch[first:first + IOV_BATCH]]
        while views:
            written = os.writev(fd, views)
            total += written
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views and written:
                views[0] = views[0][written:]
    start_writeback(fd, offset, total)


def _hash_file(path: Path, algorithm: str, size: int) -> "hashlib._Hash":
    hasher = hashlib.new(algorithm)
    with open(path, "rb", buffering=0) as f:
        remaining = size
        while remaining > 0:
            block = f.read(min(HASH_READ, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)
    return hasher


class FilesystemBlobStore:
    """``BlobStore`` on a local directory tree (see ``registry.storage.paths``)."""

    def __init__(self, root: Path, *, executor: ThreadPoolExecutor | None = None) -> None:
        self.root = Path(root)
        self._executor = executor or ThreadPoolExecutor(max_workers=8,
                                                        thread_name_prefix="blobio")
        self._running: dict[str, _Running] = {}
        for directory in (paths.blobs_root(self.root), paths.uploads_root(self.root),
                          paths.tmp_root(self.root)):
            directory.mkdir(parents=True, exist_ok=True)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- blobs --------------------------------------------------------------------------

    def _path(self, digest: Digest) -> Path:
        return paths.blob_path(self.root, digest.algorithm, digest.hex)

    async def stat(self, digest: Digest) -> int | None:
        try:
            return os.stat(self._path(digest)).st_size
        except FileNotFoundError:
            return None

    def local_path(self, digest: Digest) -> Path | None:
        return self._path(digest)

    async def read_bytes(self, digest: Digest) -> bytes:
        with open(self._path(digest), "rb") as f:
            return f.read()

    async def stage_bytes(self, data: bytes, digest: Digest) -> StagedBlob:
        staging = paths.tmp_root(self.root) / uuid.uuid4().hex
        await self._run(write_durably, staging, data)
        return StagedBlob(digest=digest, size=len(data), source=staging)

    def publish(self, staged: StagedBlob) -> None:
        target = self._path(staged.digest)
        if target.exists():
            # Content addressing: identical bytes are already durable there.
            os.unlink(staged.source)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged.source, target)
            fsync_dir(target.parent)
        if staged.session_id is not None:
            self._running.pop(staged.session_id, None)
            shutil.rmtree(paths.upload_dir(self.root, staged.session_id), ignore_errors=True)

    def discard(self, staged: StagedBlob) -> None:
        try:
            os.unlink(staged.source)
        except FileNotFoundError:
            pass

    def delete(self, digest: Digest) -> None:
        try:
            os.unlink(self._path(digest))
        except FileNotFoundError:
            pass

    def iter_blobs(self) -> Iterable[StoredBlob]:
        base = paths.blobs_root(self.root)
        for algorithm in ALGORITHMS:
            alg_dir = base / algorithm
            if not alg_dir.is_dir():
                continue
            for prefix in os.scandir(alg_dir):
                if not prefix.is_dir():
                    continue
                for entry in os.scandir(prefix.path):
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    yield StoredBlob(Digest(algorithm, entry.name), st.st_size, st.st_mtime)

    # -- upload sessions ----------------------------------------------------------------

    async def create_upload(self, repository: str, algorithm: str) -> UploadSession:
        session_id = uuid.uuid4().hex
        directory = paths.upload_dir(self.root, session_id)
        info = {"repository": repository, "algorithm": algorithm, "started_at": time.time()}

        # Synchronous on purpose (two tiny files, no fsync: a process crash keeps them in the
        # page cache), so a cancelled request can never leave a session it did not report.
        directory.mkdir(parents=True)
        (directory / "data").touch()
        paths.upload_info(self.root, session_id).write_text(json.dumps(info))
        self._running[session_id] = _Running(0, hashlib.new(algorithm))
        return UploadSession(session_id, repository, algorithm, info["started_at"], 0)

    def _load(self, session_id: str) -> UploadSession:
        if not paths.is_session_id(session_id):
            raise UploadUnknownError(session_id)
        try:
            info = json.loads(paths.upload_info(self.root, session_id).read_bytes())
            size = os.stat(paths.upload_data(self.root, session_id)).st_size
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise UploadUnknownError(session_id) from None
        return UploadSession(session_id, info["repository"], info["algorithm"],
                             info["started_at"], size)

    async def get_upload(self, session_id: str) -> UploadSession:
        return self._load(session_id)

    async def _running_for(self, session: UploadSession, algorithm: str) -> _Running:
        running = self._running.get(session.id)
        if running is None or running.offset != session.offset \
                or running.hasher.name != algorithm:
            data = paths.upload_data(self.root, session.id)
            hasher = await self._run(_hash_file, data, algorithm, session.offset)
            lock = running.lock if running is not None else asyncio.Lock()
            running = _Running(session.offset, hasher, lock)
            self._running[session.id] = running
        return running

    async def append(self, session_id: str, chunks: AsyncIterable[bytes], *,
                     offset: int | None, length: int | None) -> UploadSession:
        session = self._load(session_id)
        running = self._running.setdefault(session_id, _Running(-1, hashlib.new(session.algorithm)))
        async with running.lock:
            session = self._load(session_id)
            if offset is not None and offset != session.offset:
                raise OffsetMismatchError(session.offset)
            running = await self._running_for(session, session.algorithm)
            start = session.offset
            received = await self._stream_into(session_id, chunks, running, start, length)
            return UploadSession(session.id, session.repository, session.algorithm,
                                 session.started_at, start + received)

    async def _stream_into(self, session_id: str, chunks: AsyncIterable[bytes],
                           running: _Running, start: int, length: int | None) -> int:
        """Receive a body into the session: the event loop only gathers chunk references;
        hashing and writing of a batch run on two threads at once (both release the GIL)
        while the loop receives the next batch."""
        fd = os.open(paths.upload_data(self.root, session_id), os.O_WRONLY | os.O_APPEND)
        loop = asyncio.get_running_loop()
        stages: list[asyncio.Future] = []
        received = 0

        async def flush(batch: list[bytes], size: int) -> None:
            nonlocal received
            if stages:
                await asyncio.gather(*stages)
            stages[:] = [loop.run_in_executor(self._executor, _hash_batch, running.hasher, batch),
                         loop.run_in_executor(self._executor, _write_batch, fd, batch,
                                              start + received)]
            received += size

        try:
            batch: list[bytes] = []
            size = 0
            async for chunk in chunks:
                batch.append(chunk)
                size += len(chunk)
                if size >= WRITE_BATCH:
                    await flush(batch, size)
                    batch, size = [], 0
            if batch:
                await flush(batch, size)
            if stages:
                await asyncio.gather(*stages)
                stages.clear()
            if length is not None and received != length:
                raise IncompleteBodyError(f"received {received} of {length} bytes")
        except BaseException:
            if stages:
                await asyncio.wait(stages)
            # Nothing of a failed body stays: cut the file back and forget the hash.
            os.ftruncate(fd, start)
            running.offset = -1
            raise
        finally:
            os.close(fd)
        running.offset = start + received
        return received

    async def finish_upload(self, session_id: str, digest: Digest) -> StagedBlob:
        session = self._load(session_id)
        running = self._running.setdefault(session_id, _Running(-1, hashlib.new(session.algorithm)))
        async with running.lock:
            session = self._load(session_id)
            running = await self._running_for(session, digest.algorithm)
            actual = running.hasher.copy().hexdigest()
            data = paths.upload_data(self.root, session_id)
            if actual != digest.hex:
                raise DigestMismatchError(f"content hashes to {digest.algorithm}:{actual}")

            def make_durable() -> None:
                fd = os.open(data, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

            await self._run(make_durable)
            return StagedBlob(digest=digest, size=session.offset, source=data,
                              session_id=session_id)

    async def cancel_upload(self, session_id: str) -> None:
        self._load(session_id)
        self._running.pop(session_id, None)
        await self._run(shutil.rmtree, paths.upload_dir(self.root, session_id), True)

    def list_uploads(self) -> Iterable[UploadSession]:
        for entry in os.scandir(paths.uploads_root(self.root)):
            try:
                yield self._load(entry.name)
            except UploadUnknownError:
                continue

    def discard_upload(self, session_id: str) -> None:
        self._running.pop(session_id, None)
        shutil.rmtree(paths.upload_dir(self.root, session_id), ignore_errors=True)
