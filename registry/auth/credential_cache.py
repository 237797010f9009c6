"""Per-process memo of credential and policy lookups, so the request path stays off the
database."""

from __future__ import annotations

import threading
from collections import OrderedDict
import time
from typing import Any, Callable

from registry.auth.identities import Identities, User


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
    """Memoises ``Identities`` lookups for ``ttl`` seconds, per process.

    Consequence: deleting or deactivating an access key, deleting a user or changing its inline
    policies takes effect within ``ttl`` seconds (5 by default) in every worker — a deliberate
    trade of immediacy for a request path free of database queries and AES. Misses (unknown
    keys) are cached too, so a client hammering with a bogus key id costs one query per
    ``ttl``; the map is bounded (``maxsize``) so random key ids cannot grow it without limit.
    """

    def __init__(self, identities: Identities, ttl: float = 5.0, *, maxsize: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._identities = identities
        self._keys = TTLMap(ttl, maxsize, clock)
        self._policies = TTLMap(ttl, maxsize, clock)

    @property
    def ttl(self) -> float:
        """How long a deleted or deactivated key may still be honoured, in seconds."""
        return self._keys.ttl

    async def lookup(self, key_id: str) -> tuple[User, str] | None:
        """``identities.lookup_access_key(key_id)``, memoised.

        Raises: SecretBoxError, StoreError.
        """
        hit, value = self._keys.get(key_id)
        if not hit:
            value = await self._identities.lookup_access_key(key_id)
            self._keys.put(key_id, value)
        return value

    async def policies_for(self, user: User) -> list[tuple[str, str]]:
        """``identities.policies_for(user)``, memoised by user id. Raises: StoreError."""
        hit, value = self._policies.get(user.id)
        if not hit:
            value = await self._identities.policies_for(user)
            self._policies.put(user.id, value)
        return value

    def invalidate(self) -> None:
        """Forget everything (tests; a CLI change in this process)."""
        self._keys.clear()
        self._policies.clear()
