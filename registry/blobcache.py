"""An in-process LRU of small immutable objects (manifests, configs, small blobs).

Content addressing makes this cache trivially coherent: the bytes under a digest never
change, so entries need no invalidation across workers; only visibility (links, tags) is
checked in the database on every request.
"""

from __future__ import annotations

from collections import OrderedDict


class BlobCache:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.used = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def get(self, digest: str) -> bytes | None:
        data = self._entries.get(digest)
        if data is not None:
            self._entries.move_to_end(digest)
        return data

    def put(self, digest: str, data: bytes) -> None:
        if len(data) > self.capacity or digest in self._entries:
            return
        self._entries[digest] = data
        self.used += len(data)
        while self.used > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self.used -= len(evicted)
