"""The lock that makes an upload session single-writer across processes.

Every request that changes a session (append, finish, cancel, the stale sweeper) holds an
exclusive ``flock`` on the session's ``info.json`` for its whole duration. ``flock`` locks
belong to an open file description, so two opens in one process exclude each other just as two
processes do; an in-process ``asyncio.Lock`` in front of it only queues the coroutines of one
process fairly instead of letting them poll.

The closing PUT renames the session directory out of ``uploads/`` while it holds the lock. A
request that was waiting has locked the (moved) inode it opened earlier, so after acquiring it
re-checks that ``uploads/<id>/info.json`` is still that same inode; if not, the session is gone
for it (``UploadUnknownError``). The same check covers a session deleted and never recreated:
session ids are random and never reused.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator

from registry.storage.base import UploadUnknownError

_FIRST_WAIT = 0.001  # seconds; doubles up to _LAST_WAIT while another process holds the lock
_LAST_WAIT = 0.05


def _open(path: Path, session_id: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise UploadUnknownError(session_id) from None


def _same_file(fd: int, path: Path) -> bool:
    held = os.fstat(fd)
    try:
        current = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class SessionLocks:
    """Per-session exclusive holds (see the module docstring)."""

    def __init__(self) -> None:
        self._local: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, session_id: str, info: Path) -> AsyncIterator[None]:
        """Hold the session until the block ends; never blocks the event loop.

        Raises:
            UploadUnknownError: the session does not exist, or was closed, cancelled or swept
                while this request waited.
        """
        self._users[session_id] = self._users.get(session_id, 0) + 1
        local = self._local.setdefault(session_id, asyncio.Lock())
        try:
            async with local:
                fd = _open(info, session_id)
                try:
                    wait = _FIRST_WAIT
                    while not _try_flock(fd):
                        await asyncio.sleep(wait)
                        wait = min(wait * 2, _LAST_WAIT)
                    if not _same_file(fd, info):
                        raise UploadUnknownError(session_id)
                    yield
                finally:
                    os.close(fd)  # releases the flock
        finally:
            self._users[session_id] -= 1
            if not self._users[session_id]:
                del self._users[session_id]
                del self._local[session_id]

    @staticmethod
    @contextmanager
    def try_hold(session_id: str, info: Path) -> Iterator[bool]:
        """Synchronous, non-blocking hold for sweepers: yields False when a request holds
        the session (the caller leaves it alone).

        Raises:
            UploadUnknownError: the session does not exist.
        """
        fd = _open(info, session_id)
        try:
            yield _try_flock(fd) and _same_file(fd, info)
        finally:
            os.close(fd)
