"""Deletes that keep images whole: each locks the repository row, checks what still needs
its target and changes things in ONE transaction, so a concurrent push that references or
re-tags the target (it takes the same lock, manifests.py) is seen by the check instead of
being undone by the delete.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol, Sequence

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.eventlog import append_events
from registry.metadata.models import Event, StillReferencedError, TagDeletion
from registry.metadata.repositories import lock_repository

_ref = t.manifest_references
_t = t.tags
_m = t.manifests
_l = t.repository_blobs


class DeleteStore(Protocol):
    """Deletes that respect references (part of ``ManifestStore``'s area)."""

    async def unlink_unreferenced_blob(self, repository_id: int, digest: str) -> bool:
        """Unlink a blob from a repository unless a manifest there references it (as a layer
        or config).

        Returns: False when the blob is not linked.
        Raises:
            StillReferencedError: naming the manifests (nothing changed).
        """

    async def delete_unreferenced_manifest(self, repository_id: int, digest: str,
                                           events: Sequence[Event]) -> list[str] | None:
        """Delete a manifest and its tags unless another manifest of the repository (an
        index) references it; write ``events`` with it.

        Returns: the tags it had, or None when there is no such manifest.
        Raises:
            StillReferencedError: naming the referencing manifests (nothing changed).
        """

    async def delete_image_tag(self, repository_id: int, tag: str,
                               events: Callable[[str], Sequence[Event]]) -> TagDeletion | None:
        """ECR's delete by tag: remove the tag, and the image with its last tag unless an
        index references it. ``events(digest)`` are written with the change.

        Returns: what was deleted, or None when the tag does not exist.
        """


@query
def _parents(d):
    return (sa.select(_ref.c.manifest_digest)
            .where(_ref.c.repository_id == sa.bindparam("repo"),
                   _ref.c.child_digest == sa.bindparam("digest"),
                   _ref.c.child_kind == sa.bindparam("kind"))
            .order_by(_ref.c.manifest_digest))


@query
def _tags(d):
    return (sa.select(_t.c.name).where(_t.c.repository_id == sa.bindparam("repo"),
                                       _t.c.digest == sa.bindparam("digest"))
            .order_by(_t.c.name))


@query
def _tag_digest(d):
    return sa.select(_t.c.digest).where(_t.c.repository_id == sa.bindparam("repo"),
                                        _t.c.name == sa.bindparam("tag"))


@query
def _unlink(d):
    return sa.delete(_l).where(_l.c.repository_id == sa.bindparam("repo"),
                               _l.c.digest == sa.bindparam("digest"))


@query
def delete_manifest_row(d):
    return sa.delete(_m).where(_m.c.repository_id == sa.bindparam("repo"),
                               _m.c.digest == sa.bindparam("digest"))


@query
def _delete_tag(d):
    return sa.delete(_t).where(_t.c.repository_id == sa.bindparam("repo"),
                               _t.c.name == sa.bindparam("tag"))


def _parent_digests(conn: Conn, repository_id: int, digest: str, kind: str) -> list[str]:
    return [r[0] for r in conn.all(_parents, repo=repository_id, digest=digest, kind=kind)]


class DeleteQueries:
    """``DeleteStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def unlink_unreferenced_blob(self, repository_id: int, digest: str) -> bool:
        def unlink(conn: Conn) -> bool:
            lock_repository(conn, repository_id)
            parents = _parent_digests(conn, repository_id, digest, "blob")
            if parents:
                raise StillReferencedError(digest, parents)
            return conn.run(_unlink, repo=repository_id, digest=digest) > 0

        return await self.db.write(unlink)

    async def delete_unreferenced_manifest(self, repository_id: int, digest: str,
                                           events: Sequence[Event]) -> list[str] | None:
        def delete(conn: Conn) -> list[str] | None:
            lock_repository(conn, repository_id)
            parents = _parent_digests(conn, repository_id, digest, "manifest")
            if parents:
                raise StillReferencedError(digest, parents)
            tags = [r[0] for r in conn.all(_tags, repo=repository_id, digest=digest)]
            if conn.run(delete_manifest_row, repo=repository_id, digest=digest) == 0:
                return None
            append_events(conn, events, now=time.time())
            return tags

        return await self.db.write(delete)

    async def delete_image_tag(self, repository_id: int, tag: str,
                               events: Callable[[str], Sequence[Event]]) -> TagDeletion | None:
        def delete(conn: Conn) -> TagDeletion | None:
            lock_repository(conn, repository_id)
            digest = conn.scalar(_tag_digest, repo=repository_id, tag=tag)
            if digest is None:
                return None
            conn.run(_delete_tag, repo=repository_id, tag=tag)
            orphan = not conn.all(_tags, repo=repository_id, digest=digest) and not \
                _parent_digests(conn, repository_id, digest, "manifest")
            if orphan:
                conn.run(delete_manifest_row, repo=repository_id, digest=digest)
            append_events(conn, events(digest), now=time.time())
            return TagDeletion(digest, orphan)

        return await self.db.write(delete)
