"""Counting open upload sessions per repository and per principal, across processes.

Each open session has an empty marker file under ``upload-index/<scope>/<key>/<session id>``
(``registry.storage.paths``), so counting one repository's or one principal's sessions lists
one small directory: O(sessions of that key), never a scan of every session, and every worker
sees the same count because it is on disk. A marker is created after its session directory and
removed after it, so a marker whose session directory is gone is dead (a crash, or a removal
in progress) and the counter prunes it.

Exactness: the count and the creation are not one atomic step across processes, so N workers
receiving POSTs for the same key at the same instant can overshoot a cap by at most N-1
sessions; within one process the check and the creation run in one event-loop step and never
overshoot. A cap is a guard against exhaustion, not a quota, so this is enough.
"""

from __future__ import annotations

import os
from pathlib import Path

from registry.storage import paths
from registry.storage.base import SessionLimits, TooManyUploadsError


class SessionIndex:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _keys(self, repository: str, owner: str) -> list[tuple[str, Path]]:
        keys = [("repository", paths.index_dir(self.root, "repository", repository))]
        if owner:
            keys.append(("principal", paths.index_dir(self.root, "principal", owner)))
        return keys

    def check(self, repository: str, owner: str, limits: SessionLimits) -> None:
        """Raises: TooManyUploadsError when a new session would exceed a cap."""
        caps = {"repository": limits.per_repository, "principal": limits.per_owner}
        for scope, directory in self._keys(repository, owner):
            limit = caps[scope]
            if limit > 0 and self._count(directory, limit) >= limit:
                raise TooManyUploadsError(scope, limit)

    def _count(self, directory: Path, limit: int) -> int:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return 0
        if len(names) < limit:
            return len(names)  # the common case: no need to look closer
        live = 0
        for name in names:
            if paths.is_session_id(name) and paths.upload_dir(self.root, name).is_dir():
                live += 1
            else:
                _unlink(directory / name)
        return live

    def add(self, session_id: str, repository: str, owner: str) -> None:
        for _, directory in self._keys(repository, owner):
            directory.mkdir(parents=True, exist_ok=True)
            os.close(os.open(directory / session_id, os.O_WRONLY | os.O_CREAT, 0o600))

    def remove(self, session_id: str, repository: str, owner: str) -> None:
        for _, directory in self._keys(repository, owner):
            _unlink(directory / session_id)


def session_limits(config) -> SessionLimits:
    return SessionLimits(per_repository=config.uploads.max_sessions_per_repository,
                         per_owner=config.uploads.max_sessions_per_principal)


def limit_message(exc: TooManyUploadsError, stale_after: int) -> str:
    """What the client hit and how to get out (shared by the /v2/ and ECR answers)."""
    key = "max_sessions_per_repository" if exc.scope == "repository" \
        else "max_sessions_per_principal"
    return (f"too many open upload sessions for this {exc.scope} (limit {exc.limit}, "
            f"[uploads] {key}): finish or cancel (DELETE) open uploads; unfinished ones "
            f"expire after {stale_after} seconds")


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
