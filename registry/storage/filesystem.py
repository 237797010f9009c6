"""Filesystem blob store: content-addressed files plus upload sessions on local disk.

Uploads stream into ``uploads/<id>/data``; each process keeps the running hash of the
sessions it is serving and saves its state next to the data at every chunk boundary
(``uploads/<id>/hashstate``, ``registry.storage.resumable``), so a chunk that arrives at
another worker (or after a restart) resumes the hash without reading the session's bytes
again; only a missing or stale state (a crash mid-chunk) falls back to re-hashing from disk. Every change to a session holds its cross-process lock
(``registry.storage.sessionlock``). The closing PUT, holding it, renames the session out of
``uploads/`` to a private name under ``tmp/`` *before* verifying, so no request of any worker
can write into the bytes it verifies; then it fsyncs them. ``publish`` renames them into
``blobs/`` and fsyncs the directory, so a crash never leaves a partial file under ``blobs/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import stat
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterable, Callable, Iterable

from registry.oci.digests import ALGORITHMS, Digest
from registry.storage import paths, resumable
from registry.storage.base import (
    BlobCheck, DigestMismatchError, OffsetMismatchError, SessionLimits,
    StagedBlob, StoredBlob, UploadSession, UploadUnknownError,
)
from registry.storage.file_reader import FileBlobReader, place_file
from registry.storage.sessionindex import SessionIndex
from registry.storage.sessionlock import SessionLocks
from registry.storage.streaming import stream_into
from registry.storage.syncio import fsync_dir, fsync_file, write_durably

log = logging.getLogger(__name__)

HASH_READ = 8 * 1024 * 1024
RUNNING_PRUNE_AT = 1024  # running hashes kept before looking for sessions closed elsewhere
VERIFY_READ = 1024 * 1024  # smaller blocks for fsck/scrub: smooth progress and throttling
HASH_STATE = "hashstate"
ANNOUNCED = "announced"  # the digest a closing PUT with a body announced (append's digest)


@dataclass
class _Running:
    """The hash of a session's first ``offset`` bytes, kept by the serving process.

    Valid while the session's size is still ``offset``: bytes before the end of a session
    are never rewritten (appends are serialised by the session lock, and a failed body only
    cuts the file back to where that body started), so equal size means equal prefix.
    """

    offset: int
    hasher: "hashlib._Hash"


def _hash_fd(fd: int, hasher: "hashlib._Hash", size: int, block_size: int = HASH_READ,
             on_bytes: Callable[[int], None] | None = None) -> "hashlib._Hash":
    remaining = size
    while remaining > 0:
        block = os.read(fd, min(block_size, remaining))
        if not block:
            break
        hasher.update(block)
        remaining -= len(block)
        if on_bytes is not None:
            on_bytes(len(block))
    return hasher


def _hash_file(path: Path, algorithm: str, size: int) -> "hashlib._Hash":
    fd = os.open(path, os.O_RDONLY)
    try:
        return _hash_fd(fd, resumable.new(algorithm), size)
    finally:
        os.close(fd)


def _saved_hash(session_dir: Path, algorithm: str, size: int) -> "hashlib._Hash | None":
    """The hash state saved at the session's last chunk boundary, if it covers exactly the
    ``size`` bytes the session holds (else a crash came between data and state)."""
    try:
        saved = (session_dir / HASH_STATE).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    hasher = resumable.restore(algorithm, saved)
    return hasher if hasher is not None and hasher.hashed == size else None


def _save_hash(session_dir: Path, hasher: "hashlib._Hash") -> None:
    """Save the state atomically (rename), without fsync: like the session's data, it only
    has to survive a process crash, and a stale state is detected by its size."""
    state = resumable.state_of(hasher)
    if state is None:
        return
    tmp = session_dir / f"{HASH_STATE}.{uuid.uuid4().hex}"
    tmp.write_bytes(state)
    os.replace(tmp, session_dir / HASH_STATE)


@dataclass(frozen=True, slots=True)
class _Staged:
    """A filesystem store's staged bytes: a private file, and the closed session's
    directory to remove once published."""

    source: Path
    cleanup: Path | None = None


def _stage(path: Path, data: bytes, digest: Digest) -> None:
    actual = hashlib.new(digest.algorithm, data).hexdigest()
    if actual != digest.hex:
        raise DigestMismatchError(f"content hashes to {digest.algorithm}:{actual}")
    write_durably(path, data)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _ensure_dir(directory: Path) -> None:
    """Create a blob directory durably: each new level is fsynced into its parent, so a
    blob published into it is still reachable after a crash."""
    if directory.is_dir():
        return
    _ensure_dir(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return
    fsync_dir(directory.parent)


class FilesystemBlobStore:
    """``BlobStore`` on a local directory tree (see ``registry.storage.paths``)."""

    def __init__(self, root: Path, *, executor: ThreadPoolExecutor | None = None) -> None:
        self.root = Path(root)
        self._executor = executor or ThreadPoolExecutor(max_workers=8,
                                                        thread_name_prefix="blobio")
        self._running: dict[str, _Running] = {}
        self._prune_at = RUNNING_PRUNE_AT
        self._locks = SessionLocks()
        self._index = SessionIndex(self.root)
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

    def local_path(self, digest: Digest) -> Path:
        """Where a blob's file lives (this store only, not the protocol: for tests that
        damage blobs on purpose, and for ``materialize``)."""
        return self._path(digest)

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return os.stat(self._path(digest)).st_size
        except FileNotFoundError:
            return None

    async def open_blob(self, digest: Digest) -> FileBlobReader:
        file = await self._run(open, self._path(digest), "rb")
        return FileBlobReader(file, self._executor)

    async def download_url(self, digest: Digest, *, expires_seconds: int) -> str | None:
        return None

    def materialize(self, digest: Digest, dest: Path) -> None:
        place_file(self._path(digest), dest)

    async def read_bytes(self, digest: Digest) -> bytes:
        with open(self._path(digest), "rb") as f:
            return f.read()

    async def stage_bytes(self, data: bytes, digest: Digest) -> StagedBlob:
        staging = paths.tmp_root(self.root) / uuid.uuid4().hex
        await self._run(_stage, staging, data, digest)
        return StagedBlob(digest=digest, size=len(data), handle=_Staged(staging))

    def publish(self, staged: StagedBlob) -> None:
        target = self._path(staged.digest)
        _ensure_dir(target.parent)
        # Always replace, never keep an existing file: the staged bytes were verified and
        # nobody can write them any more, while an existing file may be a corrupt copy (disk
        # damage, or a file poisoned before this check existed) that content addressing would
        # otherwise keep forever, for every repository and account sharing the digest.
        # Re-hashing the existing file instead would cost a full read of every re-pushed
        # layer; a rename costs the same as publishing a new blob. Readers that opened the old
        # file keep its inode until they close it.
        handle: _Staged = staged.handle
        os.replace(handle.source, target)
        fsync_dir(target.parent)
        if staged.session_id is not None:
            self._running.pop(staged.session_id, None)
        if handle.cleanup is not None:
            shutil.rmtree(handle.cleanup, ignore_errors=True)

    def discard(self, staged: StagedBlob) -> None:
        handle: _Staged = staged.handle
        _remove(handle.source)
        if handle.cleanup is not None:
            shutil.rmtree(handle.cleanup, ignore_errors=True)

    def delete(self, digest: Digest) -> None:
        _remove(self._path(digest))

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

    def verify(self, digest: Digest, *,
               on_bytes: Callable[[int], None] | None = None) -> BlobCheck | None:
        try:
            fd = os.open(self._path(digest), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None  # not a blob (a stray directory): nothing to hash
            hasher = _hash_fd(fd, hashlib.new(digest.algorithm), st.st_size, VERIFY_READ,
                              on_bytes)
        finally:
            os.close(fd)
        return BlobCheck(digest, st.st_size, hasher.hexdigest(), (st.st_dev, st.st_ino))

    def quarantine(self, check: BlobCheck, *, now: float) -> str | None:
        source = self._path(check.digest)
        try:
            st = os.stat(source)
        except FileNotFoundError:
            return None
        if (st.st_dev, st.st_ino) != check.version:
            return None  # replaced since it was hashed (a re-push): not ours to move
        for attempt in range(100):
            target = paths.quarantine_path(self.root, check.digest.algorithm, check.digest.hex,
                                           int(now), attempt)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"no free quarantine name for {check.digest}")
        os.unlink(source)
        fsync_dir(target.parent)
        fsync_dir(source.parent)
        return str(target)

    # -- upload sessions ----------------------------------------------------------------

    async def create_upload(self, repository: str, algorithm: str, *, owner: str = "",
                            limits: SessionLimits | None = None) -> UploadSession:
        session_id = uuid.uuid4().hex
        directory = paths.upload_dir(self.root, session_id)
        info = {"repository": repository, "algorithm": algorithm, "owner": owner,
                "started_at": time.time()}

        # Synchronous on purpose (a few tiny files, no fsync: a process crash keeps them in
        # the page cache), so a cancelled request can never leave a session it did not
        # report, and the cap check and the creation happen in one event-loop step.
        if limits is not None:
            self._index.check(repository, owner, limits)
        directory.mkdir(parents=True)
        (directory / "data").touch()
        paths.upload_info(self.root, session_id).write_text(json.dumps(info))
        self._index.add(session_id, repository, owner)
        self._running[session_id] = _Running(0, resumable.new(algorithm))
        if len(self._running) > self._prune_at:
            self._prune_running()
        return UploadSession(session_id, repository, algorithm, info["started_at"], 0, owner)

    def _prune_running(self) -> None:
        """Forget hashes of sessions another worker finished, cancelled or swept (each
        process only learns of its own); amortised O(1) per session by doubling."""
        for session_id in list(self._running):
            if not paths.upload_dir(self.root, session_id).is_dir():
                del self._running[session_id]
        self._prune_at = max(RUNNING_PRUNE_AT, 2 * len(self._running))

    def _load(self, session_id: str) -> UploadSession:
        if not paths.is_session_id(session_id):
            raise UploadUnknownError(session_id)
        try:
            info = json.loads(paths.upload_info(self.root, session_id).read_bytes())
            size = os.stat(paths.upload_data(self.root, session_id)).st_size
            return UploadSession(session_id, info["repository"], info["algorithm"],
                                 info["started_at"], size, info.get("owner", ""))
        except (FileNotFoundError, NotADirectoryError, ValueError, KeyError, TypeError):
            raise UploadUnknownError(session_id) from None

    def _hold(self, session_id: str):
        if not paths.is_session_id(session_id):
            raise UploadUnknownError(session_id)
        return self._locks.hold(session_id, paths.upload_info(self.root, session_id))

    async def get_upload(self, session_id: str) -> UploadSession:
        # No lock: the closing PUT's rename is atomic, so a status request sees the session
        # either still open or gone, never half-closed.
        return self._load(session_id)

    async def _running_for(self, session: UploadSession, algorithm: str,
                           directory: Path | None = None) -> _Running:
        running = self._running.get(session.id)
        if running is None or running.offset != session.offset \
                or running.hasher.name != algorithm:
            directory = directory or paths.upload_dir(self.root, session.id)
            hasher = _saved_hash(directory, algorithm, session.offset)
            if hasher is None:  # no state, or a stale one: one pass over the bytes
                hasher = await self._run(_hash_file, directory / "data", algorithm,
                                         session.offset)
            running = _Running(session.offset, hasher)
            self._running[session.id] = running
        return running

    async def append(self, session_id: str, chunks: AsyncIterable[bytes], *,
                     offset: int | None, length: int | None,
                     digest: Digest | None = None) -> UploadSession:
        async with self._hold(session_id):
            session = self._load(session_id)
            if offset is not None and offset != session.offset:
                raise OffsetMismatchError(session.offset)
            running = await self._running_for(session, session.algorithm)
            start = session.offset
            try:
                received = await stream_into(paths.upload_data(self.root, session_id), chunks,
                                             running.hasher, start, length, self._executor)
            except BaseException:
                running.offset = -1  # the hasher saw bytes that were cut off again
                raise
            running.offset = start + received
            if digest is not None and start == 0 and digest.algorithm == session.algorithm:
                # Announced: a failed check of these bytes empties the session (see base).
                (paths.upload_dir(self.root, session_id) / ANNOUNCED).write_text(str(digest))
            if received:
                await self._run(_save_hash, paths.upload_dir(self.root, session_id),
                                running.hasher)
            return UploadSession(session.id, session.repository, session.algorithm,
                                 session.started_at, start + received, session.owner)

    async def finish_upload(self, session_id: str, digest: Digest) -> StagedBlob:
        async with self._hold(session_id):
            session = self._load(session_id)
            directory = paths.upload_dir(self.root, session_id)
            closing = paths.closing_dir(self.root, session_id)
            # The closing point: after this rename no request of any process can name the
            # session (a waiter that gets the lock next finds uploads/<id> gone), so the bytes
            # verified below are the bytes published.
            os.rename(directory, closing)
            try:
                running = await self._running_for(session, digest.algorithm, closing)
                actual = running.hasher.copy().hexdigest()
                if actual != digest.hex:
                    raise DigestMismatchError(f"content hashes to {digest.algorithm}:{actual}")
                await self._run(fsync_file, closing / "data")
            except DigestMismatchError:
                if (closing / ANNOUNCED).exists():  # the closing request brought the bytes
                    self._empty(session_id, closing, session.algorithm)
                os.rename(closing, directory)
                raise
            except BaseException:
                # Bad input (or a cancelled request) changes nothing: the session goes back
                # as it was, still locked by us, so the client may retry or DELETE it.
                os.rename(closing, directory)
                raise
            self._running.pop(session_id, None)
            self._index.remove(session_id, session.repository, session.owner)
            return StagedBlob(digest=digest, size=session.offset,
                              handle=_Staged(closing / "data", cleanup=closing),
                              session_id=session_id)

    def _empty(self, session_id: str, directory: Path, algorithm: str) -> None:
        """Drop an announced session's bytes: it is as its POST left it."""
        os.truncate(directory / "data", 0)
        for name in (HASH_STATE, ANNOUNCED):
            _remove(directory / name)
        self._running[session_id] = _Running(0, resumable.new(algorithm))

    async def cancel_upload(self, session_id: str) -> None:
        async with self._hold(session_id):
            gone = self._take_out(self._load(session_id))
        await self._run(shutil.rmtree, gone, True)

    def _take_out(self, session: UploadSession) -> Path:
        """Move a held session out of reach and forget it; return where it went."""
        gone = paths.closing_dir(self.root, session.id)
        os.rename(paths.upload_dir(self.root, session.id), gone)
        self._running.pop(session.id, None)
        self._index.remove(session.id, session.repository, session.owner)
        return gone

    def list_uploads(self) -> Iterable[UploadSession]:
        for entry in os.scandir(paths.uploads_root(self.root)):
            try:
                yield self._load(entry.name)
            except UploadUnknownError:
                continue

    def discard_upload(self, session_id: str) -> bool:
        if not paths.is_session_id(session_id):
            return True
        try:
            with SessionLocks.try_hold(session_id,
                                       paths.upload_info(self.root, session_id)) as held:
                if not held:
                    return False
                gone = self._take_out(self._load(session_id))
        except UploadUnknownError:
            return True
        shutil.rmtree(gone, ignore_errors=True)
        return True

    def _loadable(self, name: str) -> bool:
        try:
            self._load(name)
        except UploadUnknownError:
            return False
        return True

    def sweep_leftovers(self, *, older_than: float) -> list[str]:
        """Remove what crashes leave behind, untouched since ``older_than`` (a timestamp):
        staged objects and closed sessions under ``tmp/``, and session directories without a
        readable ``info.json`` (a crash inside ``create_upload``). Returns their names."""
        removed = []
        candidates = list(os.scandir(paths.tmp_root(self.root)))
        candidates += [e for e in os.scandir(paths.uploads_root(self.root))
                       if not self._loadable(e.name)]
        for entry in candidates:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if max(st.st_mtime, st.st_ctime) >= older_than:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                _remove(Path(entry.path))
            removed.append(entry.name)
        return removed
