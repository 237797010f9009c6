"""An in-process LRU of small immutable objects (manifests, configs, small blobs).

Content addressing makes this cache trivially coherent: the bytes under a digest never
change, so entries need no invalidation across workers; only visibility (links, tags) is
checked in the database on every request.

Bytes are verified against their digest when they enter (cheap: entries are small), so a
corrupt file on disk is never served from memory for as long as the process lives; ``put``
reports such bytes as corruption and refuses them, and the caller answers as for a missing
blob.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


class CorruptBlobError(FileNotFoundError):
    """Stored bytes do not hash to their digest: callers answer as for a missing blob (a
    ``FileNotFoundError``), so corrupt content is never handed out."""


def hashes_to(digest: str, data: bytes) -> bool:
    algorithm, _, expected = digest.partition(":")
    return hashlib.new(algorithm, data).hexdigest() == expected


class BlobCache:
    def __init__(self, capacity_bytes: int, *,
                 on_corrupt: Callable[[str], None] | None = None) -> None:
        self.capacity = capacity_bytes
        self.used = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._on_corrupt = on_corrupt

    def get(self, digest: str) -> bytes | None:
        data = self._entries.get(digest)
        if data is not None:
            self._entries.move_to_end(digest)
        return data

    def put(self, digest: str, data: bytes) -> bool:
        """Keep ``data`` under ``digest`` if it hashes to it.

        Returns:
            False when the bytes do not hash to ``digest`` (reported as corruption; nothing
            is kept): the caller must not serve them.
        """
        if digest in self._entries:
            return True
        if not hashes_to(digest, data):
            log.error("corrupt blob read from storage", extra={"digest": digest,
                                                               "size": len(data)})
            if self._on_corrupt is not None:
                self._on_corrupt(digest)
            return False
        if len(data) > self.capacity:
            return True
        self._entries[digest] = data
        self.used += len(data)
        while self.used > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self.used -= len(evicted)
        return True

    async def read(self, digest: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The bytes under ``digest``: from memory, else ``load()``ed and verified first.

        Every reader of small objects (manifest GET, BatchGetImage, the scanner) comes here, so
        none can hand out a corrupt file.

        Raises:
            FileNotFoundError: ``load`` found nothing; CorruptBlobError (a subclass): the
                stored bytes do not hash to ``digest``.
        """
        data = self.get(digest)
        if data is not None:
            return data
        data = await load()
        if not self.put(digest, data):
            raise CorruptBlobError(digest)
        return data

    def evict(self, digest: str) -> None:
        data = self._entries.pop(digest, None)
        if data is not None:
            self.used -= len(data)
