"""Deletes that keep images whole: each checks what still needs its target and changes
things in ONE transaction, so a concurrent push that references or re-tags the target is
seen by the check instead of being undone by the delete. Mixed into ``SQLiteMetadataStore``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Callable, Sequence

from registry.metadata.models import Event, StillReferencedError


@dataclass(frozen=True, slots=True)
class TagDeletion:
    digest: str  # the manifest the tag pointed at when it was deleted
    manifest_deleted: bool  # it was the image's last tag and nothing referenced the image


def _parents(conn: sqlite3.Connection, repository_id: int, digest: str, kind: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT manifest_digest FROM manifest_references WHERE repository_id = ? AND "
        "child_digest = ? AND child_kind = ? ORDER BY manifest_digest",
        (repository_id, digest, kind))]


def _tags(conn: sqlite3.Connection, repository_id: int, digest: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM tags WHERE repository_id = ? AND "
                                       "digest = ? ORDER BY name", (repository_id, digest))]


class DeleteQueries:
    """Requires ``transaction`` and ``_add_events`` of the store."""

    async def unlink_unreferenced_blob(self, repository_id: int, digest: str) -> bool:
        """Unlink a blob from a repository unless a manifest there references it (as a layer
        or config). Returns False when the blob is not linked.

        Raises: StillReferencedError naming the manifests (nothing changed).
        """
        def unlink(conn: sqlite3.Connection) -> bool:
            parents = _parents(conn, repository_id, digest, "blob")
            if parents:
                raise StillReferencedError(digest, parents)
            return conn.execute("DELETE FROM repository_blobs WHERE repository_id = ? AND "
                                "digest = ?", (repository_id, digest)).rowcount > 0

        return await self.transaction(unlink)

    async def delete_unreferenced_manifest(self, repository_id: int, digest: str,
                                           events: Sequence[Event]) -> list[str] | None:
        """Delete a manifest and its tags unless another manifest of the repository (an
        index) references it; write ``events`` with it.

        Returns: the tags it had, or None when there is no such manifest.
        Raises: StillReferencedError naming the referencing manifests (nothing changed).
        """
        def delete(conn: sqlite3.Connection) -> list[str] | None:
            parents = _parents(conn, repository_id, digest, "manifest")
            if parents:
                raise StillReferencedError(digest, parents)
            tags = _tags(conn, repository_id, digest)
            if conn.execute("DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
                            (repository_id, digest)).rowcount == 0:
                return None
            self._add_events(conn, events)
            return tags

        return await self.transaction(delete)

    async def delete_image_tag(self, repository_id: int, tag: str,
                               events: Callable[[str], Sequence[Event]]) -> TagDeletion | None:
        """ECR's delete by tag: remove the tag, and the image with its last tag unless an
        index references it — decided inside the transaction, so a push that tags the same
        manifest meanwhile keeps it. ``events(digest)`` are written with the change.

        Returns: what was deleted, or None when the tag does not exist.
        """
        def delete(conn: sqlite3.Connection) -> TagDeletion | None:
            row = conn.execute("SELECT digest FROM tags WHERE repository_id = ? AND name = ?",
                               (repository_id, tag)).fetchone()
            if row is None:
                return None
            digest = row[0]
            conn.execute("DELETE FROM tags WHERE repository_id = ? AND name = ?",
                         (repository_id, tag))
            orphan = not _tags(conn, repository_id, digest) and not _parents(
                conn, repository_id, digest, "manifest")
            if orphan:
                conn.execute("DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
                             (repository_id, digest))
            self._add_events(conn, events(digest))
            return TagDeletion(digest, orphan)

        return await self.transaction(delete)
