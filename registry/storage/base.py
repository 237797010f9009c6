"""The blob storage protocol.

A ``BlobStore`` holds content-addressed bytes and the upload sessions that produce them.
The filesystem store is the default; an S3 store satisfies the same protocol later. Every
implementation runs the contract suite in ``tests/unit/test_blobstore_contract.py``.

Visibility rule (DESIGN invariant 1): bytes become readable under their digest only through
``publish``, which the metadata store calls inside the transaction that records the blob, so
a blob is visible only after its bytes are complete, verified and durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterable, Iterable, Protocol

from registry.oci.digests import Digest


@dataclass(frozen=True, slots=True)
class UploadSession:
    id: str
    repository: str
    algorithm: str
    started_at: float
    offset: int  # bytes received so far


@dataclass(frozen=True, slots=True)
class StagedBlob:
    """Verified, durable bytes waiting to be published under ``digest``."""

    digest: Digest
    size: int
    source: Path
    session_id: str | None = None


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


class BlobStore(Protocol):
    async def stat(self, digest: Digest) -> int | None:
        """Return the size of a stored blob, or None when it is absent."""

    def local_path(self, digest: Digest) -> Path | None:
        """Return a path the server may sendfile from, or None for remote stores."""

    async def read_bytes(self, digest: Digest) -> bytes:
        """Return a blob's bytes (for small objects: manifests, configs).

        Raises:
            FileNotFoundError: the blob is absent.
        """

    async def stage_bytes(self, data: bytes, digest: Digest) -> StagedBlob:
        """Write ``data`` durably to a staging area; the caller checked its digest."""

    def publish(self, staged: StagedBlob) -> None:
        """Atomically make staged bytes readable under their digest (synchronous; called
        inside the metadata transaction). Idempotent when the blob already exists."""

    def discard(self, staged: StagedBlob) -> None:
        """Drop staged bytes that will not be published."""

    def delete(self, digest: Digest) -> None:
        """Remove a blob's bytes (synchronous; called inside the GC transaction). Missing
        blobs are not an error."""

    def iter_blobs(self) -> Iterable[StoredBlob]:
        """Every stored blob (synchronous; for the GC orphan sweep)."""

    async def create_upload(self, repository: str, algorithm: str) -> UploadSession:
        """Open a new upload session."""

    async def get_upload(self, session_id: str) -> UploadSession:
        """Return a session with its current offset.

        Raises:
            UploadUnknownError: no such session.
        """

    async def append(self, session_id: str, chunks: AsyncIterable[bytes], *,
                     offset: int | None, length: int | None) -> UploadSession:
        """Append a body to a session, hashing on the fly.

        ``offset`` is where the client says the chunk starts (None: at the end). ``length``
        is the announced body length (None: unknown). On any failure nothing of this body
        stays in the session.

        Raises:
            UploadUnknownError, OffsetMismatchError, IncompleteBodyError.
        """

    async def finish_upload(self, session_id: str, digest: Digest) -> StagedBlob:
        """Verify the session's bytes against ``digest`` and make them durable.

        Raises:
            UploadUnknownError, DigestMismatchError (the session stays as it was).
        """

    async def cancel_upload(self, session_id: str) -> None:
        """Delete a session and its bytes.

        Raises:
            UploadUnknownError: no such session.
        """

    def list_uploads(self) -> Iterable[UploadSession]:
        """Every open session (synchronous; for the stale-session sweeper)."""

    def discard_upload(self, session_id: str) -> None:
        """Delete a session if it exists (synchronous: safe during request cancellation)."""
