"""Re-hash every stored blob; report the ones that do not hash to their name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from registry.storage.base import BlobCheck, StoredBlob
from registry.storage.base import BlobStore


@dataclass
class HashPass:
    listed: list[StoredBlob]
    corrupt: list[BlobCheck] = field(default_factory=list)
    checked: int = 0
    bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(blob.size for blob in self.listed)

    @property
    def digests(self) -> set[str]:
        return {str(blob.digest) for blob in self.listed}


def list_blobs(blobs: BlobStore) -> HashPass:
    return HashPass(listed=list(blobs.iter_blobs()))


def hash_all(blobs: BlobStore, run: HashPass, *,
             on_bytes: Callable[[int], None] | None = None,
             on_corrupt: Callable[[BlobCheck], None] | None = None) -> HashPass:
    """Hash every listed blob (a blob deleted since the listing is skipped).

    A mismatch is hashed once more when the file was replaced meanwhile (a re-push heals a
    corrupt blob), so only bytes that are still bad are reported.
    """
    for stored in run.listed:
        check = blobs.verify(stored.digest, on_bytes=on_bytes)
        if check is None:
            continue
        run.checked += 1
        run.bytes += check.size
        if not check.ok:
            again = blobs.verify(stored.digest)
            if again is not None and again.version != check.version:
                check = again
            if check.ok:
                continue
            run.corrupt.append(check)
            if on_corrupt is not None:
                on_corrupt(check)
    return run
