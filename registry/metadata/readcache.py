"""The pull path's cache of repositories and tag resolutions, for PostgreSQL.

A manifest GET by tag asks two questions (which repository, which manifest the tag names);
on SQLite each costs microseconds, on PostgreSQL a round trip and a thread hop, which would
make a pull several times slower than on SQLite. So each process keeps the answers it gave,
and forgets ALL of them whenever any transaction that can change them commits: those
transactions ``notify(CHANGED)`` (``repositories.lock_repository``, which every push, tag
move and delete takes, and every settings update). This process's own commits clear the
cache before ``write`` returns (read-your-writes); other nodes' commits clear it when
PostgreSQL delivers the notification, milliseconds later. Entries also expire after ``ttl``
seconds, which bounds staleness should a notification be lost (the listener reconnecting).

Only answers that exist are kept: a repository or tag created elsewhere is seen at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

CHANGED = "berth_metadata_changed"


class ReadCache:
    def __init__(self, *, ttl: float = 2.0, max_entries: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Any, tuple[Any, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is None or entry[1] < self._clock():
            return None
        return entry[0]

    def generation(self) -> int:
        """Read before a lookup, pass to ``put``: an answer read before a clear is dropped."""
        return self._generation

    def put(self, key: Any, value: Any, generation: int) -> None:
        if value is None:
            return
        with self._lock:
            if generation != self._generation:
                return  # a change committed while we read: the answer may be old
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (value, self._clock() + self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
