"""Blobs and their links into repositories: claim, link, mount, and the repository-scoped
read rule (a blob is readable in a repository only through that repository's link).

Blob durability (DESIGN invariants 1 and 2): bytes are made durable and renamed into place
BEFORE the transaction that links them, never inside it, so no write transaction waits on a
file system. A blob that is published but not yet linked must survive garbage collection;
the three steps are:

    1. ``claim_blob(digest, size)``: a short transaction upserting the ``blobs`` row with
       ``created_at = now``. This opens a fresh grace window: GC never deletes a blob row
       younger than its grace cutoff, and re-checks that under a row lock before it deletes
       row and file, so either GC finished before the claim (the claim re-creates the row and
       step 2 re-creates the file) or it sees the fresh row and leaves it.
    2. publish the bytes (``BlobStore.publish``: rename into place, directory fsync), outside
       any transaction.
    3. ``link_blob`` / ``put_manifest``: one transaction records the link (and the manifest,
       its references, tags, events and typed ``writes``).

A crash between the steps leaves a claimed row with (or without) a file and no link, which GC
removes once the grace window passes.

Concurrency: ``mount_blob`` locks the source link and the blob row while it links, so neither
an unlink nor GC can remove them in between.
"""

from __future__ import annotations

import time
from typing import Protocol

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.rows import insert

_b = t.blobs
_l = t.repository_blobs


class BlobLinkStore(Protocol):
    """Blobs and their repository links (part of ``ManifestStore``'s area)."""

    async def claim_blob(self, digest: str, size: int) -> None:
        """Record a blob about to be published, with a fresh GC grace window (step 1 of the
        module docstring's protocol). Call before ``BlobStore.publish``.

        Raises:
            StoreError: the database failed (nothing was published yet: discard the bytes).
        """

    async def link_blob(self, repository_id: int, digest: str, size: int) -> None:
        """Record a published blob and link it into the repository (step 3).

        Raises:
            StoreError: the database failed; the published bytes stay for GC.
        """

    async def linked_blob_size(self, repository_id: int, digest: str) -> int | None:
        """Size of a blob linked into the repository, or None (the repo-scoped read rule)."""

    async def mount_blob(self, source_repository_id: int, target_repository_id: int,
                         digest: str) -> int | None:
        """Link a blob that the source repository holds into the target.

        Returns: its size, or None when the source does not hold it (nothing changed).
        """

    async def touch_blob_link(self, repository_id: int, digest: str) -> None:
        """Renew a link's grace window (a client just checked the blob exists)."""

    async def blob_link_age(self, repository_id: int, digest: str) -> float | None:
        """Seconds since the link was made or renewed, or None when not linked."""


@query
def claim(d):
    stmt = insert(d, _b).values(digest=sa.bindparam("digest"), size=sa.bindparam("size"),
                                created_at=sa.bindparam("now"))
    return stmt.on_conflict_do_update(index_elements=["digest"],
                                      set_={"created_at": stmt.excluded.created_at})


@query
def _link(d):
    stmt = insert(d, _l).values(repository_id=sa.bindparam("repo"),
                                digest=sa.bindparam("digest"), linked_at=sa.bindparam("now"))
    return stmt.on_conflict_do_update(index_elements=["repository_id", "digest"],
                                      set_={"linked_at": stmt.excluded.linked_at})


@query
def _linked_size(d):
    return (sa.select(_b.c.size).select_from(_l.join(_b, _b.c.digest == _l.c.digest))
            .where(_l.c.repository_id == sa.bindparam("repo"),
                   _l.c.digest == sa.bindparam("digest")))


@query
def _linked_size_locked(d):
    # Locks the source link and the blob row: neither an unlink nor GC can remove them
    # between this read and the new link.
    return _linked_size.build(d).with_for_update()


@query
def _touch(d):
    # Parameters of an UPDATE must not be named like the table's columns (SQLAlchemy).
    return sa.update(_l).where(_l.c.repository_id == sa.bindparam("repo"),
                               _l.c.digest == sa.bindparam("blob")).values(
        linked_at=sa.bindparam("now"))


@query
def _linked_at(d):
    return sa.select(_l.c.linked_at).where(_l.c.repository_id == sa.bindparam("repo"),
                                           _l.c.digest == sa.bindparam("digest"))


class BlobLinkQueries:
    """``BlobLinkStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def claim_blob(self, digest: str, size: int) -> None:
        def claim_row(conn: Conn) -> None:
            # A claim lost to a database crash is harmless: the link that would follow fails
            # on the lost connection, and the published bytes stay an orphan for GC.
            conn.commit_lazily()
            conn.run(claim, digest=digest, size=size, now=time.time())

        await self.db.write(claim_row)

    async def link_blob(self, repository_id: int, digest: str, size: int) -> None:
        def link(conn: Conn) -> None:
            now = time.time()
            conn.run(claim, digest=digest, size=size, now=now)
            conn.run(_link, repo=repository_id, digest=digest, now=now)

        await self.db.write(link)

    async def linked_blob_size(self, repository_id: int, digest: str) -> int | None:
        return await self.db.read(lambda c: c.scalar(_linked_size, repo=repository_id,
                                                     digest=digest))

    async def mount_blob(self, source_repository_id: int, target_repository_id: int,
                         digest: str) -> int | None:
        def mount(conn: Conn) -> int | None:
            size = conn.scalar(_linked_size_locked, repo=source_repository_id, digest=digest)
            if size is not None:
                conn.run(_link, repo=target_repository_id, digest=digest, now=time.time())
            return size

        return await self.db.write(mount)

    async def touch_blob_link(self, repository_id: int, digest: str) -> None:
        await self.db.write(lambda c: c.run(_touch, repo=repository_id, blob=digest,
                                            now=time.time()))

    async def blob_link_age(self, repository_id: int, digest: str) -> float | None:
        linked_at = await self.db.read(lambda c: c.scalar(_linked_at, repo=repository_id,
                                                          digest=digest))
        return None if linked_at is None else time.time() - linked_at
