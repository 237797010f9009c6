"""Per-process memo of credential and policy lookups, so the request path stays off SQLite."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
import time
from typing import Any, Callable

from registry.auth.identities import IdentityStore, User


class TTLMap:
    """A bounded map whose entries expire ``ttl`` seconds after they were loaded; past
    ``maxsize`` the least recently stored entry goes first (never everything at once).

    The one per-process memo of the request path (credentials, policies, verified registry
    tokens, pull-protection thresholds): thread-safe, because credential lookups also run on
    worker threads.
    """

    def __init__(self, ttl: float, maxsize: int, clock: Callable[[], float]) -> None:
        self._ttl, self._maxsize, self._clock = ttl, maxsize, clock
        self._entries: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                return False, None
            return True, entry[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @property
    def ttl(self) -> float:
        return self._ttl

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class CredentialCache:
    """Memoises ``IdentityStore`` lookups for ``ttl`` seconds, per process.

    Consequence: deleting or deactivating an access key, deleting a user or changing its inline
    policies takes effect within ``ttl`` seconds (5 by default) in every worker — a deliberate
    trade of immediacy for a request path free of SQLite and AES. Misses (unknown keys) are
    cached too, so a client hammering with a bogus key id costs one query per ``ttl``; the map
    is bounded (``maxsize``) so random key ids cannot grow it without limit.
    """

    def __init__(self, store: IdentityStore, ttl: float = 5.0, *, maxsize: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._keys = TTLMap(ttl, maxsize, clock)
        self._policies = TTLMap(ttl, maxsize, clock)

    @property
    def ttl(self) -> float:
        """How long a deleted or deactivated key may still be honoured, in seconds."""
        return self._keys.ttl

    def lookup_sync(self, key_id: str) -> tuple[User, str] | None:
        """``store.lookup_access_key(key_id)``, memoised. Raises: SecretBoxError."""
        hit, value = self._keys.get(key_id)
        if not hit:
            value = self._store.lookup_access_key(key_id)
            self._keys.put(key_id, value)
        return value

    async def lookup(self, key_id: str) -> tuple[User, str] | None:
        """As ``lookup_sync``; a miss runs the query in a thread, off the event loop."""
        hit, value = self._keys.get(key_id)
        if hit:
            return value
        return await asyncio.to_thread(self.lookup_sync, key_id)

    def policies_for_sync(self, user: User) -> list[tuple[str, str]]:
        """``store.policies_for(user)``, memoised by user id."""
        hit, value = self._policies.get(user.id)
        if not hit:
            value = self._store.policies_for(user)
            self._policies.put(user.id, value)
        return value

    async def policies_for(self, user: User) -> list[tuple[str, str]]:
        hit, value = self._policies.get(user.id)
        if hit:
            return value
        return await asyncio.to_thread(self.policies_for_sync, user)

    def invalidate(self) -> None:
        """Forget everything (tests; a CLI change in this process)."""
        self._keys.clear()
        self._policies.clear()
