"""The blob storage protocol.

A ``BlobStore`` holds content-addressed bytes and the upload sessions that produce them.
Nothing outside ``registry/storage`` sees where or how the bytes are kept: readers open a
blob (``open_blob``: a local file to sendfile from, or a stream of any range), get a direct
download URL where the store has them, or have it ``materialize`` a file for a consumer
that needs one. The filesystem store is the default. Every implementation runs the contract
suite in ``tests/storage/test_blobstore_contract.py``.

Visibility rule (DESIGN invariant 1): bytes become readable under their digest only through
``publish``, and a client reaches them only through a repository link the metadata store
records AFTER the publish (claim, publish, link: registry/publishing.py), so a blob is
visible only after its bytes are complete, verified and durable. ``publish`` runs outside any
metadata transaction: no transaction waits on the file system.

Integrity rule (DESIGN invariant 6): bytes under a digest always hash to it. Closing a session
is atomic across processes: once ``finish_upload`` has taken a session, every other request
on it (append, finish, cancel, status) fails with ``UploadUnknownError``, so nothing can write
into bytes after they were verified; and ``publish`` always installs the verified bytes, never
trusting a file already at the destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterable, AsyncIterator, BinaryIO, Callable, Iterable, Protocol

from registry.oci.digests import Digest


@dataclass(frozen=True, slots=True)
class UploadSession:
    id: str
    repository: str
    algorithm: str
    started_at: float
    offset: int  # bytes received so far
    owner: str = ""  # the principal ARN that opened it (counted by SessionLimits)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Caps on open sessions; 0 means unlimited."""

    per_repository: int = 0
    per_owner: int = 0


@dataclass(frozen=True, slots=True)
class StagedBlob:
    """Verified, durable bytes waiting to be published under ``digest``.

    ``handle`` belongs to the store that staged them (a private file for the filesystem, an
    unfinished multipart upload for S3): callers pass the staged blob back, never look inside.
    """

    digest: Digest
    size: int
    handle: Any
    session_id: str | None = None


class BlobReader(Protocol):
    """An opened stored blob: its bytes as they were when it was opened.

    ``file`` is an open local file the server may send with sendfile, or None for a remote
    store; ``chunks`` streams any byte range either way. ``close`` releases it (idempotent).
    """

    size: int
    file: BinaryIO | None

    def chunks(self, offset: int, count: int) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BlobCheck:
    """The result of re-hashing one stored blob.

    ``version`` identifies the exact bytes that were hashed (for the filesystem, the file's
    device and inode), so a repair can refuse to touch a blob replaced since.
    """

    digest: Digest
    size: int
    actual: str  # hex digest of the stored bytes
    version: object

    @property
    def ok(self) -> bool:
        return self.actual == self.digest.hex


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: Digest
    size: int
    modified_at: float


class UploadUnknownError(LookupError):
    """The upload session does not exist (never created, finished, cancelled or expired)."""


class OffsetMismatchError(ValueError):
    """A chunk did not start where the session ends; ``offset`` is the session's size."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        super().__init__(f"upload is at offset {offset}")


class DigestMismatchError(ValueError):
    """The uploaded bytes do not hash to the digest the client named."""


class IncompleteBodyError(ValueError):
    """The request body ended before the length the client announced."""


class StorageUnavailableError(RuntimeError):
    """The blob storage cannot be reached or refuses to work (an S3 endpoint down or
    answering 5xx). ``reason`` is safe to show a client: no keys, no URLs with signatures."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TooManyUploadsError(RuntimeError):
    """Opening a session would exceed a cap; ``scope`` is "repository" or "principal"."""

    def __init__(self, scope: str, limit: int) -> None:
        self.scope = scope
        self.limit = limit
        super().__init__(f"too many open upload sessions for this {scope} (limit {limit})")


class BlobStore(Protocol):
    async def stat(self, digest: Digest) -> int | None:
        """Return the size of a stored blob, or None when it is absent."""

    def blob_size(self, digest: Digest) -> int | None:
        """``stat`` for threads (fsck): the size of a stored blob, or None."""

    async def open_blob(self, digest: Digest) -> BlobReader:
        """Open a stored blob for reading (any range, any number of times until closed).

        Raises:
            FileNotFoundError: the blob is absent.
        """

    async def download_url(self, digest: Digest, *, expires_seconds: int) -> str | None:
        """A URL a client may GET the blob from directly (S3: presigned), valid for
        ``expires_seconds``; None when the store has no such URLs (the filesystem)."""

    def materialize(self, digest: Digest, dest: Path) -> None:
        """Put the blob's bytes at the new file ``dest`` for a consumer that needs a file (the
        scanner's image layout, the vulnerability DB): a hard link where the store is local
        and on the same file system, else a copy or download (synchronous, for threads).

        Raises:
            FileNotFoundError: the blob is absent.
        """

    async def read_bytes(self, digest: Digest) -> bytes:
        """Return a blob's bytes (for small objects: manifests, configs).

        Raises:
            FileNotFoundError: the blob is absent.
        """

    async def stage_bytes(self, data: bytes, digest: Digest) -> StagedBlob:
        """Verify ``data`` against ``digest`` in memory and write it durably to a private
        staging area.

        Raises:
            DigestMismatchError: the bytes do not hash to ``digest``.
        """

    def publish(self, staged: StagedBlob) -> None:
        """Atomically make staged bytes readable under their digest (synchronous, on a worker
        thread, after ``MetadataStore.claim_blob`` and before the transaction that links the
        blob: registry/publishing.py). The verified staged bytes always replace whatever
        the destination held, so a corrupt copy is healed by the next good upload; readers
        that already opened the old copy keep reading it."""

    def discard(self, staged: StagedBlob) -> None:
        """Drop staged bytes that will not be published."""

    def delete(self, digest: Digest) -> None:
        """Remove a blob's bytes (synchronous; called inside the GC transaction). Missing
        blobs are not an error."""

    def iter_blobs(self) -> Iterable[StoredBlob]:
        """Every stored blob (synchronous; for the GC orphan sweep)."""

    def verify(self, digest: Digest, *,
               on_bytes: Callable[[int], None] | None = None) -> BlobCheck | None:
        """Re-hash a stored blob (synchronous, for fsck and scrub threads).

        Args:
            on_bytes: called with the size of every block read (progress, throttling).
        Returns:
            The check, or None when the blob is absent.
        """

    def quarantine(self, check: BlobCheck, *, now: float) -> str | None:
        """Move a blob that failed ``check`` out of the store (synchronous; called inside
        the metadata transaction that forgets the blob).

        Returns:
            Where the bytes went, or None when the stored bytes are no longer the ones
            ``check`` hashed (replaced or deleted since): those are left alone.
        """

    async def create_upload(self, repository: str, algorithm: str, *, owner: str = "",
                            limits: SessionLimits | None = None) -> UploadSession:
        """Open a new upload session for ``owner`` (a principal ARN).

        Raises:
            TooManyUploadsError: the repository or the owner already has ``limits`` open
                sessions (counted across processes; see the implementation for exactness).
        """

    async def get_upload(self, session_id: str) -> UploadSession:
        """Return a session with its current offset (a snapshot; takes no lock).

        Raises:
            UploadUnknownError: no such session, or its closing PUT has taken it.
        """

    async def append(self, session_id: str, chunks: AsyncIterable[bytes], *,
                     offset: int | None, length: int | None,
                     digest: Digest | None = None) -> UploadSession:
        """Append a body to a session, hashing on the fly.

        ``offset`` is where the client says the chunk starts (None: at the end). ``length``
        is the announced body length (None: unknown). On any failure nothing of this body
        stays in the session. Holds the session's lock for the whole body.

        ``digest``: the digest a closing PUT announced for the whole blob, given with its
        body (a monolithic push). It counts only for an empty session in the digest's own
        algorithm; the session is then announced, and the backend may place the bytes
        where that blob goes (S3 sends the parts to the blob's key: no copy on publish).
        ``finish_upload`` of an announced session whose bytes fail the check empties it
        again, so the closing request that brought them changes nothing.

        Raises:
            UploadUnknownError (also when a closing PUT took the session first),
            OffsetMismatchError, IncompleteBodyError.
        """

    async def finish_upload(self, session_id: str, digest: Digest) -> StagedBlob:
        """Close the session: take it out of reach of every other request, verify its bytes
        against ``digest`` and make them durable. The returned staged bytes can no longer be
        written by anyone.

        Raises:
            UploadUnknownError: no such session (or another request closed it first).
            DigestMismatchError: the bytes do not hash to ``digest``; the session is put
                back exactly as it was (bad input changes nothing), so the client may retry
                with the right digest or DELETE it; an announced session (``append``) is
                put back empty, as it was before the request that announced it.
        """

    async def cancel_upload(self, session_id: str) -> None:
        """Delete a session and its bytes.

        Raises:
            UploadUnknownError: no such session.
        """

    def list_uploads(self) -> Iterable[UploadSession]:
        """Every open session (synchronous; for the stale-session sweeper)."""

    def discard_upload(self, session_id: str) -> bool:
        """Delete a session if it exists and no request holds it (synchronous: safe during
        request cancellation). Returns False when a request holds it (the sweeper retries on
        its next pass)."""

    def sweep_leftovers(self, *, older_than: float) -> list[str]:
        """Remove what crashes leave behind, untouched since ``older_than`` (a timestamp):
        staged bytes never published, closed sessions, half-created sessions (S3: orphaned
        multipart uploads). Synchronous, for the session sweeper. Returns their names."""
