"""Metadata for blob integrity checks (``berth fsck``, the periodic scrub).

``integrity_snapshot_sync`` reads what fsck needs to walk every tag's closure in ONE
consistent snapshot (SQLite: one read transaction, WAL writers are not blocked; PostgreSQL:
a REPEATABLE READ, READ ONLY transaction), so a push or delete between two of its reads
never shows up as a tag with missing pieces. ``quarantine_blob_sync`` makes the registry
stop claiming a blob whose bytes were found corrupt, so clients push it again: docker's HEAD
then answers 404 and the layer is re-uploaded; manifests stay (they are re-pushed by the
same client push).

Synchronous methods: fsck and the scrub run on threads of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as lite

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query


@dataclass
class RegistrySnapshot:
    repositories: dict[int, str] = field(default_factory=dict)  # id -> "account/name"
    tags: list[tuple[int, str, str]] = field(default_factory=list)  # repository, tag, digest
    manifests: set[tuple[int, str]] = field(default_factory=set)
    # (repository, manifest digest) -> [(child digest, "blob" | "manifest")]
    references: dict[tuple[int, str], list[tuple[str, str]]] = field(default_factory=dict)
    links: set[tuple[int, str]] = field(default_factory=set)
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size


@dataclass(frozen=True)
class ForgottenBlob:
    path: str  # where ``move`` put the bytes
    repositories: list[str]  # the repositories that held the blob ("account/name")


class IntegrityStore(Protocol):
    """The part of ``MetadataStore`` this module implements (synchronous: fsck and scrub
    threads). Every method may raise ``StoreError`` (nothing changed)."""

    def integrity_snapshot_sync(self) -> RegistrySnapshot:
        """Repositories, tags, manifests, references, links and blobs, all as of one
        moment."""

    def recorded_blobs_sync(self, digests: Sequence[str]) -> set[str]:
        """Which of ``digests`` have a blob row right now."""

    def quarantine_blob_sync(self, digest: str, *, checked_since: float,
                             move: Callable[[], str | None]) -> ForgottenBlob | None:
        """Unlink a corrupt blob from every repository, drop its row (kept while a manifest
        row is the digest) and call ``move()`` to take its bytes away, in one transaction
        that holds the blob's row (or its key) locked, so a push claiming the digest waits.

        ``checked_since``: when the bytes were hashed. A row claimed since then belongs to
        a push that is publishing a fresh copy: nothing is done. ``move()`` returning None
        (the file was replaced or removed since it was hashed) rolls everything back.

        Returns: where the bytes went and who held them, or None when nothing changed.
        """


_b, _l, _m, _r = t.blobs, t.repository_blobs, t.manifests, t.repositories


@query
def _snapshot_sqlite(d):
    return sa.text("BEGIN")


@query
def _end_snapshot_sqlite(d):
    return sa.text("COMMIT")


@query
def _snapshot_pg(d):
    return sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


@query
def _repositories(d):
    return sa.select(_r.c.id, _r.c.account, _r.c.name)


@query
def _tags(d):
    return sa.select(t.tags.c.repository_id, t.tags.c.name, t.tags.c.digest)


@query
def _manifests(d):
    return sa.select(_m.c.repository_id, _m.c.digest)


@query
def _references(d):
    refs = t.manifest_references
    return sa.select(refs.c.repository_id, refs.c.manifest_digest, refs.c.child_digest,
                     refs.c.child_kind)


@query
def _links(d):
    return sa.select(_l.c.repository_id, _l.c.digest)


@query
def _blobs(d):
    return sa.select(_b.c.digest, _b.c.size)


@query
def _recorded(d):
    return sa.select(_b.c.digest).where(_b.c.digest.in_(sa.bindparam("digests",
                                                                     expanding=True)))


@query
def _lock_blob(d):
    return sa.select(_b.c.created_at).where(_b.c.digest == sa.bindparam("digest")) \
        .with_for_update()


@query
def _hold_key(d):
    ins = (pg.insert if d == "postgresql" else lite.insert)(_b).values(
        digest=sa.bindparam("digest"), size=-1, created_at=0.0)
    return ins.on_conflict_do_nothing(index_elements=[_b.c.digest]).returning(_b.c.digest)


@query
def _users(d):
    holders = sa.union(
        sa.select(_l.c.repository_id).where(_l.c.digest == sa.bindparam("digest")),
        sa.select(_m.c.repository_id).where(_m.c.digest == sa.bindparam("digest")))
    return (sa.select(_r.c.account, _r.c.name).where(_r.c.id.in_(holders))
            .order_by(_r.c.account, _r.c.name))


@query
def _unlink_everywhere(d):
    return sa.delete(_l).where(_l.c.digest == sa.bindparam("digest"))


@query
def _drop_unless_manifest(d):
    return sa.delete(_b).where(_b.c.digest == sa.bindparam("digest"),
                               ~sa.exists().where(_m.c.digest == _b.c.digest))


class _Replaced(Exception):
    """The stored file is no longer the corrupt one: undo the row changes."""


def _read_snapshot(conn: Conn) -> RegistrySnapshot:
    snap = RegistrySnapshot()
    for repo_id, account, name in conn.all(_repositories):
        snap.repositories[repo_id] = f"{account}/{name}"
    snap.tags = [(r[0], r[1], r[2]) for r in conn.all(_tags)]
    snap.manifests = {(r[0], r[1]) for r in conn.all(_manifests)}
    for repo_id, parent, child, kind in conn.all(_references):
        snap.references.setdefault((repo_id, parent), []).append((child, kind))
    snap.links = {(r[0], r[1]) for r in conn.all(_links)}
    snap.blobs = {r[0]: r[1] for r in conn.all(_blobs)}
    return snap


class IntegrityQueries:
    """``IntegrityStore`` on a ``Database`` (``self.db``)."""

    db: Database

    def integrity_snapshot_sync(self) -> RegistrySnapshot:
        def read(conn: Conn) -> RegistrySnapshot:
            if conn.dialect != "sqlite":
                conn.execute(_snapshot_pg)  # first statement: the whole transaction
                return _read_snapshot(conn)
            conn.execute(_snapshot_sqlite)
            try:
                return _read_snapshot(conn)
            finally:
                conn.execute(_end_snapshot_sqlite)

        return self.db.read_sync(read)

    def recorded_blobs_sync(self, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        return {r[0] for r in self.db.read_sync(
            lambda c: c.all(_recorded, digests=list(digests)))}

    def quarantine_blob_sync(self, digest: str, *, checked_since: float,
                             move: Callable[[], str | None]) -> ForgottenBlob | None:
        def run(conn: Conn) -> ForgottenBlob | None:
            created_at = conn.scalar(_lock_blob, digest=digest)
            placeholder = False
            if created_at is None:
                # No row: hold the digest's key instead, so a claim waits for us.
                placeholder = conn.scalar(_hold_key, digest=digest) is not None
                if not placeholder:
                    return None  # claimed just now: a push is publishing a fresh copy
            elif created_at >= checked_since:
                return None  # claimed since it was hashed: a fresh copy is on its way
            users = [f"{account}/{name}" for account, name in conn.all(_users, digest=digest)]
            conn.run(_unlink_everywhere, digest=digest)
            conn.run(_drop_unless_manifest, digest=digest)
            moved = move()
            if moved is None:
                raise _Replaced
            return ForgottenBlob(moved, users)

        try:
            return self.db.write_sync(run)
        except _Replaced:
            return None
