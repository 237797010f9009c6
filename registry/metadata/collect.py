"""Online garbage collection: candidates read in pages, deletions in short locked batches.

The collector (``registry/gc.py``) never holds a transaction across more than one batch:

1. it reads a page of candidates (keyset-paged, outside any write transaction: on SQLite it
   does not hold the writer lock, on PostgreSQL it locks nothing);
2. it hands the page to a ``delete_*`` method, one short write transaction per batch, which
   locks the candidate rows (``FOR UPDATE``; SQLite's writer lock already serialises), then
   re-checks the whole garbage rule in a NEW statement — under READ COMMITTED a new
   statement sees everything committed before the lock was granted, while a re-check inside
   the locking statement would still use its old snapshot — and deletes only what still
   qualifies. A concurrent push either committed first (the re-check sees its tag, link,
   reference or fresh ``created_at``: the row stays) or waits for the lock: inserting a tag,
   link or manifest takes a key-share lock on the row it references, and a blob claim
   (``claim_blob``: upsert of the blobs row) waits on the row itself.

Blob files are removed inside the deleting transaction, after the row delete and before
COMMIT, so a claim of the same digest waits until both are gone and then publishes its own
copy. A file without a row (an orphan) is removed under a placeholder row inserted for the
purpose (``ON CONFLICT DO NOTHING``: a claim in flight either made the row first, and the file
stays, or waits on the placeholder's key until the file is gone) and deleted again before
COMMIT, so no one ever sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as lite

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query


@dataclass(frozen=True, slots=True)
class GarbageManifest:
    repository_id: int
    repository: str  # the repository's name
    digest: str

    @property
    def key(self) -> tuple[int, str]:
        return self.repository_id, self.digest


@dataclass(frozen=True, slots=True)
class GarbageBlob:
    digest: str
    size: int


class CollectStore(Protocol):
    """The part of ``MetadataStore`` this module implements. Synchronous: the collector runs
    on a thread of its own. ``cutoff``: rows younger than this (epoch seconds) are never
    garbage (the grace window for pushes in progress). Every method may raise ``StoreError``
    (nothing changed by the failed call)."""

    def garbage_manifests_sync(self, cutoff: float, *, after: tuple[int, str] | None,
                               limit: int) -> list[GarbageManifest]:
        """Up to ``limit`` untagged manifests pushed before ``cutoff`` that no index of
        their repository references and whose subject (if any) is gone, after ``after``
        (repository id, digest), in that order."""

    def delete_garbage_manifests_sync(self, candidates: Sequence[GarbageManifest],
                                      cutoff: float) -> list[GarbageManifest]:
        """Delete the candidates that are still garbage, in one transaction; return them."""

    def garbage_links_sync(self, cutoff: float, *, after: tuple[int, str] | None,
                           limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (repository id, digest) blob links made before ``cutoff`` that no
        manifest of the repository uses (as itself or a reference), after ``after``."""

    def delete_garbage_links_sync(self, links: Sequence[tuple[int, str]],
                                  cutoff: float) -> list[tuple[int, str]]:
        """Delete the links that are still garbage, in one transaction; return them."""

    def garbage_blobs_sync(self, cutoff: float, *, after: str | None,
                           limit: int) -> list[GarbageBlob]:
        """Up to ``limit`` blobs recorded (or claimed) before ``cutoff`` that no repository
        links and no manifest is, in digest order after ``after``."""

    def delete_garbage_blobs_sync(self, digests: Sequence[str], cutoff: float,
                                  remove: Callable[[str], None]) -> list[GarbageBlob]:
        """Delete the blobs that are still garbage, in one transaction, calling
        ``remove(digest)`` for each after its row is deleted and before COMMIT (a
        concurrent claim of the digest waits for both). An exception from ``remove`` rolls
        the whole batch back and propagates. Returns the blobs deleted."""

    def unrecorded_blobs_sync(self, digests: Sequence[str]) -> list[str]:
        """The ``digests`` that have no blobs row (read only)."""

    def delete_orphan_files_sync(self, digests: Sequence[str],
                                 remove: Callable[[str], None]) -> list[str]:
        """Call ``remove(digest)`` for each of ``digests`` that has no blobs row, in one
        transaction that keeps a concurrent claim of the digest waiting meanwhile. Returns
        the digests removed."""


_m, _r, _l, _b = t.manifests, t.manifest_references, t.repository_blobs, t.blobs
_tags, _repos = t.tags, t.repositories


def _manifest_is_garbage(m):
    # An untagged manifest nothing points at: no tag, no parent index in the repository,
    # and no live subject (a referrer lives as long as its subject).
    subject = _m.alias("subject")
    return sa.and_(
        m.c.pushed_at < sa.bindparam("cutoff"),
        ~sa.exists().where(_tags.c.repository_id == m.c.repository_id,
                           _tags.c.digest == m.c.digest),
        ~sa.exists().where(_r.c.repository_id == m.c.repository_id,
                           _r.c.child_digest == m.c.digest),
        sa.or_(m.c.subject_digest.is_(None),
               ~sa.exists().where(subject.c.repository_id == m.c.repository_id,
                                  subject.c.digest == m.c.subject_digest)))


def _link_is_garbage(l):
    return sa.and_(
        l.c.linked_at < sa.bindparam("cutoff"),
        ~sa.exists().where(_r.c.repository_id == l.c.repository_id,
                           _r.c.child_digest == l.c.digest),
        ~sa.exists().where(_m.c.repository_id == l.c.repository_id,
                           _m.c.digest == l.c.digest))


def _blob_is_garbage(b):
    return sa.and_(b.c.created_at < sa.bindparam("cutoff"),
                   ~sa.exists().where(_l.c.digest == b.c.digest),
                   ~sa.exists().where(_m.c.digest == b.c.digest))


def _after(table):
    """Keyset condition: (repository_id, digest) after (:after_repo, :after_digest)."""
    repo, digest = sa.bindparam("after_repo"), sa.bindparam("after_digest")
    return sa.or_(table.c.repository_id > repo,
                  sa.and_(table.c.repository_id == repo, table.c.digest > digest))


def _in_batch(table):
    return sa.and_(table.c.repository_id == sa.bindparam("repo"),
                   table.c.digest.in_(sa.bindparam("digests", expanding=True)))


# -- manifests --------------------------------------------------------------------------------

@query
def _manifest_page(d):
    return (sa.select(_m.c.repository_id, _repos.c.name, _m.c.digest)
            .join(_repos, _repos.c.id == _m.c.repository_id)
            .where(_after(_m), _manifest_is_garbage(_m))
            .order_by(_m.c.repository_id, _m.c.digest).limit(sa.bindparam("limit")))


@query
def _lock_manifests(d):
    return (sa.select(_m.c.digest).where(_in_batch(_m)).order_by(_m.c.digest)
            .with_for_update())


@query
def _still_garbage_manifests(d):
    return sa.select(_m.c.digest).where(_in_batch(_m), _manifest_is_garbage(_m))


@query
def _delete_manifests(d):
    return sa.delete(_m).where(_in_batch(_m))


# -- links ------------------------------------------------------------------------------------

@query
def _link_page(d):
    return (sa.select(_l.c.repository_id, _l.c.digest)
            .where(_after(_l), _link_is_garbage(_l))
            .order_by(_l.c.repository_id, _l.c.digest).limit(sa.bindparam("limit")))


@query
def _lock_links(d):
    return (sa.select(_l.c.digest).where(_in_batch(_l)).order_by(_l.c.digest)
            .with_for_update())


@query
def _still_garbage_links(d):
    return sa.select(_l.c.digest).where(_in_batch(_l), _link_is_garbage(_l))


@query
def _delete_links(d):
    return sa.delete(_l).where(_in_batch(_l))


# -- blobs and files --------------------------------------------------------------------------

_DIGESTS = sa.bindparam("digests", expanding=True)


@query
def _blob_page(d):
    return (sa.select(_b.c.digest, _b.c.size)
            .where(_b.c.digest > sa.bindparam("after"), _blob_is_garbage(_b))
            .order_by(_b.c.digest).limit(sa.bindparam("limit")))


@query
def _lock_blobs(d):
    return (sa.select(_b.c.digest).where(_b.c.digest.in_(_DIGESTS)).order_by(_b.c.digest)
            .with_for_update())


@query
def _still_garbage_blobs(d):
    return (sa.select(_b.c.digest, _b.c.size).where(_b.c.digest.in_(_DIGESTS),
                                                    _blob_is_garbage(_b))
            .order_by(_b.c.digest))


@query
def _delete_blobs(d):
    return sa.delete(_b).where(_b.c.digest.in_(_DIGESTS))


@query
def _recorded(d):
    return sa.select(_b.c.digest).where(_b.c.digest.in_(_DIGESTS))


@query
def _placeholder(d):
    ins = (pg.insert if d == "postgresql" else lite.insert)(_b).values(
        digest=sa.bindparam("digest"), size=-1, created_at=0.0)
    return ins.on_conflict_do_nothing(index_elements=[_b.c.digest]).returning(_b.c.digest)


def _by_repository(keys: Sequence[tuple[int, str]]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for repository_id, digest in keys:
        groups.setdefault(repository_id, []).append(digest)
    return groups


def _delete_keyed(conn: Conn, keys: Sequence[tuple[int, str]], cutoff: float, lock, check,
                  delete) -> set[tuple[int, str]]:
    """Lock, re-check and delete (repository id, digest) rows, one repository at a time."""
    gone: set[tuple[int, str]] = set()
    for repository_id, digests in sorted(_by_repository(keys).items()):
        conn.all(lock, repo=repository_id, digests=digests)
        confirmed = [r[0] for r in conn.all(check, repo=repository_id, digests=digests,
                                            cutoff=cutoff)]
        if confirmed:
            conn.run(delete, repo=repository_id, digests=confirmed)
            gone.update((repository_id, digest) for digest in confirmed)
    return gone


class CollectQueries:
    """``CollectStore`` on a ``Database`` (``self.db``)."""

    db: Database

    def garbage_manifests_sync(self, cutoff: float, *, after: tuple[int, str] | None,
                               limit: int) -> list[GarbageManifest]:
        repo, digest = after or (-1, "")
        rows = self.db.read_sync(lambda c: c.all(_manifest_page, cutoff=cutoff, after_repo=repo,
                                                 after_digest=digest, limit=limit))
        return [GarbageManifest(*row) for row in rows]

    def delete_garbage_manifests_sync(self, candidates: Sequence[GarbageManifest],
                                      cutoff: float) -> list[GarbageManifest]:
        if not candidates:
            return []
        gone = self.db.write_sync(lambda c: _delete_keyed(
            c, [m.key for m in candidates], cutoff, _lock_manifests, _still_garbage_manifests,
            _delete_manifests))
        return [m for m in candidates if m.key in gone]

    def garbage_links_sync(self, cutoff: float, *, after: tuple[int, str] | None,
                           limit: int) -> list[tuple[int, str]]:
        repo, digest = after or (-1, "")
        rows = self.db.read_sync(lambda c: c.all(_link_page, cutoff=cutoff, after_repo=repo,
                                                 after_digest=digest, limit=limit))
        return [(row[0], row[1]) for row in rows]

    def delete_garbage_links_sync(self, links: Sequence[tuple[int, str]],
                                  cutoff: float) -> list[tuple[int, str]]:
        if not links:
            return []
        gone = self.db.write_sync(lambda c: _delete_keyed(
            c, links, cutoff, _lock_links, _still_garbage_links, _delete_links))
        return [key for key in links if key in gone]

    def garbage_blobs_sync(self, cutoff: float, *, after: str | None,
                           limit: int) -> list[GarbageBlob]:
        rows = self.db.read_sync(lambda c: c.all(_blob_page, cutoff=cutoff, after=after or "",
                                                 limit=limit))
        return [GarbageBlob(*row) for row in rows]

    def delete_garbage_blobs_sync(self, digests: Sequence[str], cutoff: float,
                                  remove: Callable[[str], None]) -> list[GarbageBlob]:
        if not digests:
            return []

        def delete(conn: Conn) -> list[GarbageBlob]:
            conn.all(_lock_blobs, digests=list(digests))
            confirmed = [GarbageBlob(*row) for row in conn.all(
                _still_garbage_blobs, digests=list(digests), cutoff=cutoff)]
            if confirmed:
                conn.run(_delete_blobs, digests=[b.digest for b in confirmed])
                for blob in confirmed:
                    remove(blob.digest)
            return confirmed

        return self.db.write_sync(delete)

    def unrecorded_blobs_sync(self, digests: Sequence[str]) -> list[str]:
        if not digests:
            return []
        recorded = {r[0] for r in self.db.read_sync(
            lambda c: c.all(_recorded, digests=list(digests)))}
        return [d for d in digests if d not in recorded]

    def delete_orphan_files_sync(self, digests: Sequence[str],
                                 remove: Callable[[str], None]) -> list[str]:
        if not digests:
            return []

        def sweep(conn: Conn) -> list[str]:
            held = [d for d in digests if conn.scalar(_placeholder, digest=d) is not None]
            for digest in held:
                remove(digest)
            if held:
                conn.run(_delete_blobs, digests=held)
            return held

        return self.db.write_sync(sweep)
