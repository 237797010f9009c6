"""Upload-session locks for stores whose sessions every node can reach (S3).

Every request that changes a session holds its lock for its whole duration, so appends,
the closing PUT, cancels and the sweeper never interleave on one session. The filesystem
store locks with ``flock`` (``registry.storage.sessionlock``); a store shared by nodes
needs a lock all nodes see:

- ``LeaseLocks``: a named lease in the metadata database (``upload:<session id>``), on the
  database's clock, renewed while held and released at the end. A node that dies holding
  one blocks the session for at most ``ttl`` seconds.
- ``ProcessLocks``: one process only (a single worker, and the storage contract suite).

Both put an ``asyncio.Lock`` in front, so one process's requests queue instead of polling.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncContextManager, AsyncIterator, ContextManager, Iterator, Protocol

_FIRST_WAIT = 0.005
_LAST_WAIT = 0.1


class SessionLockProvider(Protocol):
    def hold(self, session_id: str) -> AsyncContextManager[None]:
        """Hold the session's lock until the block ends (waiting while another holds it)."""

    def try_hold(self, session_id: str) -> ContextManager[bool]:
        """Synchronous, non-blocking: yields False when someone holds it."""


class _Queues:
    """An asyncio lock per session while anyone in this process waits for or holds it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def turn(self, session_id: str) -> AsyncIterator[None]:
        self._users[session_id] = self._users.get(session_id, 0) + 1
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            self._users[session_id] -= 1
            if not self._users[session_id]:
                del self._users[session_id]
                del self._locks[session_id]

    def busy(self, session_id: str) -> bool:
        return session_id in self._users


class ProcessLocks:
    """Locks within one process."""

    def __init__(self) -> None:
        self._queues = _Queues()
        self._held: set[str] = set()
        self._mutex = threading.Lock()

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        async with self._queues.turn(session_id):
            wait = _FIRST_WAIT
            while not self._take(session_id):  # a synchronous holder (the sweeper)
                await asyncio.sleep(wait)
                wait = min(wait * 2, _LAST_WAIT)
            try:
                yield
            finally:
                self._give(session_id)

    @contextmanager
    def try_hold(self, session_id: str) -> Iterator[bool]:
        if self._queues.busy(session_id) or not self._take(session_id):
            yield False
            return
        try:
            yield True
        finally:
            self._give(session_id)

    def _take(self, session_id: str) -> bool:
        with self._mutex:
            if session_id in self._held:
                return False
            self._held.add(session_id)
            return True

    def _give(self, session_id: str) -> None:
        with self._mutex:
            self._held.discard(session_id)


class LeaseLocks:
    """Locks as named leases in the metadata database, seen by every node."""

    def __init__(self, leases, *, ttl: float = 60.0) -> None:
        self._leases = leases  # acquire_lease(_sync) / release_lease(_sync): metadata.jobs
        self._ttl = ttl
        self._queues = _Queues()

    @staticmethod
    def _name(session_id: str) -> str:
        return f"upload:{session_id}"

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        name, owner = self._name(session_id), uuid.uuid4().hex
        async with self._queues.turn(session_id):
            wait = _FIRST_WAIT
            while not await self._leases.acquire_lease(name, owner, ttl=self._ttl):
                await asyncio.sleep(wait)
                wait = min(wait * 2, _LAST_WAIT)
            renewal = asyncio.create_task(self._renew(name, owner))
            try:
                yield
            finally:
                renewal.cancel()
                await asyncio.gather(renewal, return_exceptions=True)
                await self._leases.release_lease(name, owner)

    async def _renew(self, name: str, owner: str) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            await self._leases.acquire_lease(name, owner, ttl=self._ttl)

    @contextmanager
    def try_hold(self, session_id: str) -> Iterator[bool]:
        if self._queues.busy(session_id):
            yield False
            return
        name, owner = self._name(session_id), uuid.uuid4().hex
        if not self._leases.acquire_lease_sync(name, owner, ttl=self._ttl):
            yield False
            return
        try:
            yield True
        finally:
            self._leases.release_lease_sync(name, owner)
