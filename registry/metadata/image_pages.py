"""Image listings for ECR's ListImages and DescribeImages: one bounded query per page.

Pages are keyset pages: a page starts strictly after the position the previous one ended
at (ECR's ``nextToken`` encodes it), so no query ever reads a whole repository, and nothing
is fetched per image: a page of images comes with its tags and layer sizes in the same
query. Positions compare in byte order on both backends (tag names are ``Name()`` columns;
digests are ASCII).
"""

from __future__ import annotations

from itertools import groupby
from typing import Protocol, Sequence

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import Database, Row, query
from registry.metadata.models import ImageRow
from registry.metadata.rows import MANIFEST_COLUMNS, manifest_row

TAG_STATUSES = ("ANY", "TAGGED", "UNTAGGED")

_m = t.manifests
_t = t.tags
_ref = t.manifest_references
_b = t.blobs


class ImagePageStore(Protocol):
    """Bounded pages of a repository's images (part of ``ManifestStore``'s area)."""

    async def list_image_ids(self, repository_id: int, *, tag_status: str,
                             after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        """(digest, tag) pairs ordered by digest then tag, after ``after``; an untagged image
        is (digest, ""). ``tag_status``: ANY, TAGGED (only tagged pairs) or UNTAGGED.
        At most ``limit`` pairs (ask one more than a page to learn whether another follows).

        Raises:
            ValueError: an unknown ``tag_status``.
        """

    async def image_page(self, repository_id: int, *, tag_status: str, after: str | None,
                         limit: int) -> list[ImageRow]:
        """Images (manifests with their tags, last pull and layer size) ordered by digest,
        after the digest ``after``, at most ``limit``.

        Raises:
            ValueError: an unknown ``tag_status``.
        """

    async def images_by_digest(self, repository_id: int,
                               digests: Sequence[str]) -> dict[str, ImageRow]:
        """The named images that exist, by digest (DescribeImages with imageIds)."""

    async def manifest_size_with_layers(self, repository_id: int, digest: str) -> int:
        """ECR's imageSizeInBytes: the sum of the blobs the manifest references."""


def _has_tag():
    return sa.exists().where(_t.c.repository_id == _m.c.repository_id,
                             _t.c.digest == _m.c.digest)


def _status_filter(status: str):
    if status == "TAGGED":
        return _has_tag()
    if status == "UNTAGGED":
        return ~_has_tag()
    return sa.true()


def _layer_size():
    return (sa.select(sa.func.coalesce(sa.func.sum(_b.c.size), 0))
            .select_from(_ref.join(_b, _b.c.digest == _ref.c.child_digest))
            .where(_ref.c.repository_id == _m.c.repository_id,
                   _ref.c.manifest_digest == _m.c.digest, _ref.c.child_kind == "blob")
            .scalar_subquery())


def _ids_query(status: str):
    @query
    def ids(d):
        tag = sa.func.coalesce(_t.c.name, "")
        join = _m.join(_t, sa.and_(_t.c.repository_id == _m.c.repository_id,
                                   _t.c.digest == _m.c.digest),
                       isouter=status != "TAGGED")
        stmt = sa.select(_m.c.digest, tag).select_from(join).where(
            _m.c.repository_id == sa.bindparam("repo"),
            sa.or_(_m.c.digest > sa.bindparam("digest"),
                   sa.and_(_m.c.digest == sa.bindparam("digest"), tag > sa.bindparam("tag"))))
        if status == "UNTAGGED":
            stmt = stmt.where(_t.c.name.is_(None))
        return stmt.order_by(_m.c.digest, tag).limit(sa.bindparam("limit"))
    return ids


_IDS = {s: _ids_query(s) for s in TAG_STATUSES}


def _detail_columns():
    return (*MANIFEST_COLUMNS, _m.c.last_pulled_at, _layer_size(), _t.c.name)


def _with_tags(where):
    join = _m.join(_t, sa.and_(_t.c.repository_id == _m.c.repository_id,
                               _t.c.digest == _m.c.digest), isouter=True)
    return (sa.select(*_detail_columns()).select_from(join)
            .where(_m.c.repository_id == sa.bindparam("repo"), where)
            .order_by(_m.c.digest, _t.c.name))


def _page_query(status: str):
    @query
    def page(d):
        # The page's digests first (index order, bounded), then those images with their tags.
        digests = (sa.select(_m.c.digest)
                   .where(_m.c.repository_id == sa.bindparam("repo"),
                          _m.c.digest > sa.bindparam("after"), _status_filter(status))
                   .order_by(_m.c.digest).limit(sa.bindparam("limit")))
        return _with_tags(_m.c.digest.in_(digests.scalar_subquery()))
    return page


_PAGES = {s: _page_query(s) for s in TAG_STATUSES}


@query
def _by_digest(d):
    return _with_tags(_m.c.digest.in_(sa.bindparam("digests", expanding=True)))


@query
def _size_with_layers(d):
    return (sa.select(sa.func.coalesce(sa.func.sum(_b.c.size), 0))
            .select_from(_ref.join(_b, _b.c.digest == _ref.c.child_digest))
            .where(_ref.c.repository_id == sa.bindparam("repo"),
                   _ref.c.manifest_digest == sa.bindparam("digest"),
                   _ref.c.child_kind == "blob"))


def _images(rows: list[Row]) -> list[ImageRow]:
    images = []
    for _, group in groupby(rows, key=lambda r: r[0]):
        group = list(group)
        first = group[0]
        manifest = manifest_row(first[:7])
        assert manifest is not None
        tags = tuple(r[9] for r in group if r[9] is not None)
        images.append(ImageRow(manifest, tags, first[7], int(first[8] or 0)))
    return images


def _check(status: str) -> None:
    if status not in TAG_STATUSES:
        raise ValueError(f"unknown tag status {status!r}")


class ImagePageQueries:
    """``ImagePageStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def list_image_ids(self, repository_id: int, *, tag_status: str,
                             after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        _check(tag_status)
        digest, tag = after or ("", "")
        rows = await self.db.read(lambda c: c.all(_IDS[tag_status], repo=repository_id,
                                                  digest=digest, tag=tag, limit=limit))
        return [(r[0], r[1]) for r in rows]

    async def image_page(self, repository_id: int, *, tag_status: str, after: str | None,
                         limit: int) -> list[ImageRow]:
        _check(tag_status)
        rows = await self.db.read(lambda c: c.all(_PAGES[tag_status], repo=repository_id,
                                                  after=after or "", limit=limit))
        return _images(rows)

    async def images_by_digest(self, repository_id: int,
                               digests: Sequence[str]) -> dict[str, ImageRow]:
        if not digests:
            return {}
        rows = await self.db.read(lambda c: c.all(_by_digest, repo=repository_id,
                                                  digests=sorted(set(digests))))
        return {i.manifest.digest: i for i in _images(rows)}

    async def manifest_size_with_layers(self, repository_id: int, digest: str) -> int:
        return int(await self.db.read(lambda c: c.scalar(
            _size_with_layers, repo=repository_id, digest=digest)) or 0)
