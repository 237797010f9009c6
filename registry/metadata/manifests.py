"""Blobs linked into repositories, manifests, tags, references and referrers: what a push
writes and a pull reads.

The bytes of a manifest are claimed and published before ``put_manifest`` runs, like any
blob's (the protocol is described in blob_links.py and registry/publishing.py); the
transaction only records and links.

Concurrency (PostgreSQL READ COMMITTED): ``put_manifest`` locks the repository row first
(``repositories.lock_repository``), as do the deletes (``deletes.py``), so the reference
check, the immutable-tag check and the writes that follow cannot interleave with another
push or delete in the same repository.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Protocol, Sequence

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata import writes as typed_writes
from registry.metadata.blob_links import BlobLinkQueries, BlobLinkStore
from registry.metadata.blob_links import claim as _claim_query
from registry.metadata.database import Conn, Database, query
from registry.metadata.deletes import DeleteQueries, DeleteStore, delete_manifest_row
from registry.metadata.eventlog import append_events
from registry.metadata.image_pages import ImagePageQueries, ImagePageStore
from registry.metadata.models import (
    Event, ManifestRecord, MissingReferencesError, Reference, RepositoryNotFoundError,
)
from registry.metadata.repositories import lock_repository
from registry.metadata.rows import MANIFEST_COLUMNS, insert, manifest_row
from registry.metadata.writes import Write

_l = t.repository_blobs
_m = t.manifests
_t = t.tags
_ref = t.manifest_references


class ManifestStore(BlobLinkStore, DeleteStore, ImagePageStore, Protocol):
    """Manifests, tags and referrers of repositories; blobs and links (blob_links.py), the
    deletes that respect references (deletes.py) and image listing pages (image_pages.py)."""

    async def get_manifest(self, repository_id: int, digest: str) -> ManifestRecord | None:
        """The manifest with this digest in the repository, or None."""

    async def resolve_tag(self, repository_id: int, tag: str) -> ManifestRecord | None:
        """The manifest a tag points at, or None."""

    async def check_manifest(self, repository_id: int, manifest: ManifestRecord,
                             tags: Sequence[str], *,
                             check_tag: Callable[[str, str | None], None] | None = None
                             ) -> None:
        """The checks of ``put_manifest``, read-only, without locks: run before publishing
        the manifest's bytes so that refused input changes nothing (DESIGN invariant 4).
        ``put_manifest`` repeats them under the lock; only a concurrent change between the two
        can make it refuse what this passed.

        Raises:
            MissingReferencesError, or what ``check_tag`` raises.
        """

    async def put_manifest(self, repository_id: int, manifest: ManifestRecord,
                           tags: Sequence[str], events: Sequence[Event], *,
                           check_tag: Callable[[str, str | None], None] | None = None,
                           writes: Sequence[Write] = ()) -> None:
        """Store a published manifest (claimed and published first, see the module
        docstring), its references, tags, ``events`` and typed ``writes`` in one transaction,
        holding the repository's lock.

        ``check_tag(tag, current_digest)`` is called for every tag under that lock and may
        raise to refuse moving it (immutable tags); the exception propagates and nothing
        changes.

        Raises:
            MissingReferencesError: a referenced blob or child manifest is not in the
                repository (nothing changed).
            RepositoryNotFoundError: the repository was deleted meanwhile.
            StoreError: the database failed.
        """

    async def delete_manifest(self, repository_id: int, digest: str,
                              events: Sequence[Event]) -> bool:
        """Delete a manifest and its tags whatever references it (Berth's own SBOM
        replacement). Returns: whether it existed."""

    async def delete_tag(self, repository_id: int, tag: str, events: Sequence[Event]) -> bool:
        """Delete a tag (the manifest stays). Returns: whether it existed."""

    async def list_tags(self, repository_id: int, *, last: str | None,
                        limit: int | None) -> list[str]:
        """Tag names after ``last`` in byte order (the same on both backends)."""

    async def tags_for(self, repository_id: int, digest: str) -> list[str]:
        """The tags pointing at a manifest, in byte order."""

    async def list_referrers(self, repository_id: int, subject_digest: str,
                             artifact_type: str | None) -> list[ManifestRecord]:
        """Manifests whose subject is ``subject_digest``, optionally of one artifact type,
        by digest."""

    async def record_pull(self, repository_id: int, digest: str) -> None:
        """Remember when a manifest was last pulled (ECR's lastRecordedPullTime)."""


# -- manifests and tags -----------------------------------------------------------------------

@query
def _manifest(d):
    return sa.select(*MANIFEST_COLUMNS).where(_m.c.repository_id == sa.bindparam("repo"),
                                              _m.c.digest == sa.bindparam("digest"))


@query
def _resolve(d):
    return (sa.select(*MANIFEST_COLUMNS)
            .select_from(_t.join(_m, sa.and_(_m.c.repository_id == _t.c.repository_id,
                                             _m.c.digest == _t.c.digest)))
            .where(_t.c.repository_id == sa.bindparam("repo"), _t.c.name == sa.bindparam("tag")))


@query
def _present_manifests(d):
    # FOR SHARE: GC deletes under FOR UPDATE and re-checks references after the lock, so a
    # child checked here cannot be collected before this push commits (PostgreSQL).
    return sa.select(_m.c.digest).where(
        _m.c.repository_id == sa.bindparam("repo"),
        _m.c.digest.in_(sa.bindparam("digests", expanding=True))).with_for_update(read=True)


@query
def _present_blobs(d):
    return sa.select(_l.c.digest).where(
        _l.c.repository_id == sa.bindparam("repo"),
        _l.c.digest.in_(sa.bindparam("digests", expanding=True))).with_for_update(read=True)


@query
def _tag_digest(d):
    return sa.select(_t.c.digest).where(_t.c.repository_id == sa.bindparam("repo"),
                                        _t.c.name == sa.bindparam("tag"))


@query
def _put_manifest(d):
    stmt = insert(d, _m).values(
        repository_id=sa.bindparam("repo"), digest=sa.bindparam("digest"),
        media_type=sa.bindparam("media_type"), size=sa.bindparam("size"),
        artifact_type=sa.bindparam("artifact_type"),
        subject_digest=sa.bindparam("subject_digest"),
        annotations=sa.bindparam("annotations"), pushed_at=sa.bindparam("now"))
    return stmt.on_conflict_do_update(index_elements=["repository_id", "digest"],
                                      set_={"pushed_at": stmt.excluded.pushed_at})


@query
def _put_reference(d):
    return insert(d, _ref).values(
        repository_id=sa.bindparam("repo"), manifest_digest=sa.bindparam("digest"),
        child_digest=sa.bindparam("child"), child_kind=sa.bindparam("kind"),
    ).on_conflict_do_nothing()


@query
def _put_tag(d):
    stmt = insert(d, _t).values(repository_id=sa.bindparam("repo"), name=sa.bindparam("tag"),
                                digest=sa.bindparam("digest"), updated_at=sa.bindparam("now"))
    return stmt.on_conflict_do_update(
        index_elements=["repository_id", "name"],
        set_={"digest": stmt.excluded.digest, "updated_at": stmt.excluded.updated_at})


@query
def _delete_tag(d):
    return sa.delete(_t).where(_t.c.repository_id == sa.bindparam("repo"),
                               _t.c.name == sa.bindparam("tag"))


def _tag_page(limited: bool):
    @query
    def page(d):
        stmt = (sa.select(_t.c.name)
                .where(_t.c.repository_id == sa.bindparam("repo"), _t.c.name > sa.bindparam("last"))
                .order_by(_t.c.name))
        return stmt.limit(sa.bindparam("limit")) if limited else stmt
    return page


_TAG_PAGE = {True: _tag_page(True), False: _tag_page(False)}


@query
def _tags_for(d):
    return (sa.select(_t.c.name).where(_t.c.repository_id == sa.bindparam("repo"),
                                       _t.c.digest == sa.bindparam("digest"))
            .order_by(_t.c.name))


def _referrers(typed: bool):
    @query
    def referrers(d):
        stmt = sa.select(*MANIFEST_COLUMNS).where(
            _m.c.repository_id == sa.bindparam("repo"),
            _m.c.subject_digest == sa.bindparam("subject"))
        if typed:
            stmt = stmt.where(_m.c.artifact_type == sa.bindparam("artifact_type"))
        return stmt.order_by(_m.c.digest)
    return referrers


_REFERRERS = {True: _referrers(True), False: _referrers(False)}


@query
def _record_pull(d):
    return sa.update(_m).where(_m.c.repository_id == sa.bindparam("repo"),
                               _m.c.digest == sa.bindparam("manifest")).values(
        last_pulled_at=sa.bindparam("now"))


def missing_references(conn: Conn, repository_id: int,
                       references: Sequence[Reference]) -> list[Reference]:
    """The references that are not in the repository (two indexed queries, any count)."""
    if not references:
        return []
    present: set[str] = set()
    manifests = sorted({r.digest for r in references if r.kind == "manifest"})
    blobs = sorted({r.digest for r in references if r.kind != "manifest"})
    if manifests:
        present |= {r[0] for r in conn.all(_present_manifests, repo=repository_id,
                                           digests=manifests)}
    blobs_present = {r[0] for r in conn.all(_present_blobs, repo=repository_id,
                                            digests=blobs)} if blobs else set()
    return [r for r in references
            if r.digest not in (present if r.kind == "manifest" else blobs_present)]


def _check_push(conn: Conn, repository_id: int, manifest: ManifestRecord, tags: Sequence[str],
                check_tag: Callable[[str, str | None], None] | None) -> None:
    missing = missing_references(conn, repository_id, manifest.references)
    if missing:
        raise MissingReferencesError(missing)
    if check_tag is not None:
        for tag in tags:
            check_tag(tag, conn.scalar(_tag_digest, repo=repository_id, tag=tag))


class ManifestQueries(BlobLinkQueries, DeleteQueries, ImagePageQueries):
    """``ManifestStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def get_manifest(self, repository_id: int, digest: str) -> ManifestRecord | None:
        return manifest_row(await self.db.read(
            lambda c: c.one(_manifest, repo=repository_id, digest=digest)))

    async def resolve_tag(self, repository_id: int, tag: str) -> ManifestRecord | None:
        return manifest_row(await self.db.read(
            lambda c: c.one(_resolve, repo=repository_id, tag=tag)))

    async def check_manifest(self, repository_id: int, manifest: ManifestRecord,
                             tags: Sequence[str], *,
                             check_tag: Callable[[str, str | None], None] | None = None
                             ) -> None:
        await self.db.read(lambda c: _check_push(c, repository_id, manifest, tags, check_tag))

    async def put_manifest(self, repository_id: int, manifest: ManifestRecord,
                           tags: Sequence[str], events: Sequence[Event], *,
                           check_tag: Callable[[str, str | None], None] | None = None,
                           writes: Sequence[Write] = ()) -> None:
        def put(conn: Conn) -> None:
            if not lock_repository(conn, repository_id):
                raise RepositoryNotFoundError(str(repository_id))
            _check_push(conn, repository_id, manifest, tags, check_tag)
            now = time.time()
            conn.run(_claim_query, digest=manifest.digest, size=manifest.size, now=now)
            conn.run(_put_manifest, repo=repository_id, digest=manifest.digest,
                     media_type=manifest.media_type, size=manifest.size,
                     artifact_type=manifest.artifact_type,
                     subject_digest=manifest.subject_digest,
                     annotations=json.dumps(manifest.annotations) if manifest.annotations
                     else None, now=now)
            conn.many(_put_reference, [dict(repo=repository_id, digest=manifest.digest,
                                            child=r.digest, kind=r.kind)
                                       for r in manifest.references])
            conn.many(_put_tag, [dict(repo=repository_id, tag=tag, digest=manifest.digest,
                                      now=now) for tag in tags])
            append_events(conn, events, now=now)
            typed_writes.apply(conn, writes, now=now)

        await self.db.write(put)

    async def delete_manifest(self, repository_id: int, digest: str,
                              events: Sequence[Event]) -> bool:
        def delete(conn: Conn) -> bool:
            lock_repository(conn, repository_id)
            if conn.run(delete_manifest_row, repo=repository_id, digest=digest) == 0:
                return False
            append_events(conn, events, now=time.time())
            return True

        return await self.db.write(delete)

    async def delete_tag(self, repository_id: int, tag: str, events: Sequence[Event]) -> bool:
        def delete(conn: Conn) -> bool:
            lock_repository(conn, repository_id)
            if conn.run(_delete_tag, repo=repository_id, tag=tag) == 0:
                return False
            append_events(conn, events, now=time.time())
            return True

        return await self.db.write(delete)

    async def list_tags(self, repository_id: int, *, last: str | None,
                        limit: int | None) -> list[str]:
        page = _TAG_PAGE[limit is not None]
        params = dict(repo=repository_id, last=last or "")
        if limit is not None:
            params["limit"] = limit
        return [r[0] for r in await self.db.read(lambda c: c.all(page, **params))]

    async def tags_for(self, repository_id: int, digest: str) -> list[str]:
        rows = await self.db.read(lambda c: c.all(_tags_for, repo=repository_id, digest=digest))
        return [r[0] for r in rows]

    async def list_referrers(self, repository_id: int, subject_digest: str,
                             artifact_type: str | None) -> list[ManifestRecord]:
        params = dict(repo=repository_id, subject=subject_digest)
        if artifact_type is not None:
            params["artifact_type"] = artifact_type
        rows = await self.db.read(
            lambda c: c.all(_REFERRERS[artifact_type is not None], **params))
        return [m for m in map(manifest_row, rows) if m is not None]

    async def record_pull(self, repository_id: int, digest: str) -> None:
        await self.db.write(lambda c: c.run(_record_pull, repo=repository_id,
                                            manifest=digest, now=time.time()))
