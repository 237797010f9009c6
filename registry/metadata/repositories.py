"""Repositories and their settings (ECR's CreateRepository fields, policy text, resource
tags), registry settings, repository listing.

Concurrency (PostgreSQL runs READ COMMITTED): creation is ``INSERT ... ON CONFLICT DO
NOTHING`` and then a read, so two nodes creating one name get one repository; every change
that checks the repository's contents first (delete without force, the tag cap) locks the
repository row (``lock_repository``) before it looks. Pushes and deletes of images take the
same lock (manifests.py), so a delete of a repository cannot interleave with a push into it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol, Sequence

import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.readcache import CHANGED
from registry.metadata.database import Conn, Database, query
from registry.metadata.eventlog import append_events
from registry.metadata.models import (
    Event, Repository, RepositoryExistsError, RepositoryNotEmptyError, RepositorySettings,
    TooManyTagsError,
)
from registry.metadata.rows import REPOSITORY_COLUMNS, insert, repository_row

REPOSITORY_TAG_LIMIT = 50  # ECR's cap on resource tags per repository

_r = t.repositories
_rt = t.repository_tags
_s = t.registry_settings


class RepositoryStore(Protocol):
    """Repositories, their settings and resource tags; per-account registry settings."""

    async def get_repository(self, account: str, name: str) -> Repository | None:
        """The repository ``name`` of ``account``, or None.

        Raises:
            StoreError: the database failed.
        """

    async def get_repository_by_id(self, repository_id: int) -> Repository | None:
        """The repository with this id, or None (deleted)."""

    async def ensure_repository(self, account: str, name: str) -> Repository:
        """The repository, created with default settings when missing (create on push).
        Two concurrent calls, on any nodes, get the same repository.

        Raises:
            StoreError: the database failed.
        """

    async def create_repository(self, account: str, name: str, settings: RepositorySettings,
                                tags: Sequence[tuple[str, str]] = ()) -> Repository:
        """Create a repository with ECR settings and resource tags.

        Raises:
            RepositoryExistsError: the account already has this name (nothing changed).
            TooManyTagsError: more than 50 distinct tag keys (nothing changed).
        """

    async def delete_repository(self, repository: Repository, *, force: bool,
                                events: Sequence[Event]) -> None:
        """Delete a repository with its images, tags and links; ``events`` are written in the
        same transaction.

        Raises:
            RepositoryNotEmptyError: images remain and ``force`` is false (nothing changed).
        """

    async def list_repositories(self, account: str, *, last: str | None, limit: int,
                                skip: int = 0) -> list[str]:
        """Names after ``last`` in byte order, passing over the first ``skip`` of them, at
        most ``limit``."""

    async def describe_repositories(self, account: str, *, after: str | None, limit: int,
                                    skip: int = 0) -> list[Repository]:
        """Repositories after ``after`` in byte order of name, passing over the first
        ``skip``, at most ``limit``."""

    async def update_repository(self, repository_id: int, **fields: Any) -> None:
        """Set some of ``image_tag_mutability``, ``mutability_filters``, ``scan_on_push``,
        ``policy_text`` (None clears the policy).

        Raises:
            ValueError: an unknown field.
        """

    async def repository_tags(self, repository_id: int) -> list[tuple[str, str]]:
        """Resource tags as (key, value), by key."""

    async def tag_repository(self, repository_id: int, tags: Sequence[tuple[str, str]]) -> None:
        """Add or overwrite resource tags.

        Raises:
            TooManyTagsError: the repository would have more than 50 keys (nothing changed).
        """

    async def untag_repository(self, repository_id: int, keys: Sequence[str]) -> None:
        """Remove resource tags by key (absent keys are ignored)."""

    async def get_setting(self, account: str, name: str) -> str | None:
        """A registry-level setting (policy, scanning configuration, ...), or None."""

    async def put_setting(self, account: str, name: str, value: str | None) -> bool:
        """Set, or with None delete, a registry setting.

        Returns: whether the setting existed before.
        """


# -- queries ----------------------------------------------------------------------------------

@query
def _by_name(d):
    return sa.select(*REPOSITORY_COLUMNS).where(_r.c.account == sa.bindparam("account"),
                                                _r.c.name == sa.bindparam("name"))


@query
def _by_id(d):
    return sa.select(*REPOSITORY_COLUMNS).where(_r.c.id == sa.bindparam("id"))


@query
def _lock(d):
    # FOR UPDATE on PostgreSQL; on SQLite BEGIN IMMEDIATE already serialises writers.
    return sa.select(_r.c.id).where(_r.c.id == sa.bindparam("id")).with_for_update()


def lock_repository(conn: Conn, repository_id: int) -> bool:
    """Lock the repository row for the rest of the transaction: every change that checks a
    repository's images or tags before it writes takes this lock first, so checks and writes
    of two transactions never interleave. False: the repository no longer exists.

    Every such change may move a tag or remove the repository: it also tells the pull-path
    caches (``readcache.py``) to forget what they hold once it commits."""
    conn.notify(CHANGED)
    return conn.one(_lock, id=repository_id) is not None


@query
def _create(d):
    return (insert(d, _r).values(
        account=sa.bindparam("account"), name=sa.bindparam("name"),
        created_at=sa.bindparam("now"), image_tag_mutability=sa.bindparam("mutability"),
        mutability_filters=sa.bindparam("filters"), scan_on_push=sa.bindparam("scan_on_push"),
        encryption_type=sa.bindparam("encryption"), kms_key=sa.bindparam("kms_key"))
        .on_conflict_do_nothing(index_elements=["account", "name"]).returning(_r.c.id))


@query
def _ensure(d):
    return (insert(d, _r).values(account=sa.bindparam("account"), name=sa.bindparam("name"),
                                 created_at=sa.bindparam("now"))
            .on_conflict_do_nothing(index_elements=["account", "name"]))


@query
def _has_manifest(d):
    return sa.select(sa.literal(1)).select_from(t.manifests).where(
        t.manifests.c.repository_id == sa.bindparam("id")).limit(1)


@query
def _delete(d):
    return sa.delete(_r).where(_r.c.id == sa.bindparam("id"))


@query
def _names(d):
    return (sa.select(_r.c.name)
            .where(_r.c.account == sa.bindparam("account"), _r.c.name > sa.bindparam("last"))
            .order_by(_r.c.name).limit(sa.bindparam("limit")).offset(sa.bindparam("skip")))


@query
def _described(d):
    return (sa.select(*REPOSITORY_COLUMNS)
            .where(_r.c.account == sa.bindparam("account"), _r.c.name > sa.bindparam("last"))
            .order_by(_r.c.name).limit(sa.bindparam("limit")).offset(sa.bindparam("skip")))


def _update_column(column: str):
    @query
    def update(d):
        return sa.update(_r).where(_r.c.id == sa.bindparam("repo_id")).values(
            {column: sa.bindparam("value")})
    return update


_UPDATES = {c: _update_column(c) for c in ("image_tag_mutability", "mutability_filters",
                                           "scan_on_push", "policy_text")}


@query
def _tags(d):
    return (sa.select(_rt.c.key, _rt.c.value).where(_rt.c.repository_id == sa.bindparam("id"))
            .order_by(_rt.c.key))


@query
def _tag_keys(d):
    return sa.select(_rt.c.key).where(_rt.c.repository_id == sa.bindparam("id"))


@query
def _put_tag(d):
    stmt = insert(d, _rt).values(repository_id=sa.bindparam("id"), key=sa.bindparam("key"),
                                 value=sa.bindparam("value"))
    return stmt.on_conflict_do_update(index_elements=["repository_id", "key"],
                                      set_={"value": stmt.excluded.value})


@query
def _untag(d):
    return sa.delete(_rt).where(_rt.c.repository_id == sa.bindparam("id"),
                                _rt.c.key == sa.bindparam("key"))


@query
def _setting(d):
    return sa.select(_s.c.value).where(_s.c.account == sa.bindparam("account"),
                                       _s.c.name == sa.bindparam("name"))


@query
def _add_setting(d):
    return (insert(d, _s).values(account=sa.bindparam("account"), name=sa.bindparam("name"),
                                 value=sa.bindparam("value"), updated_at=sa.bindparam("now"))
            .on_conflict_do_nothing(index_elements=["account", "name"])
            .returning(_s.c.name))


@query
def _replace_setting(d):
    # UPDATE parameters must not be named like the table's columns (SQLAlchemy).
    return sa.update(_s).where(_s.c.account == sa.bindparam("in_account"),
                               _s.c.name == sa.bindparam("setting")).values(
        value=sa.bindparam("new_value"), updated_at=sa.bindparam("now"))


@query
def _delete_setting(d):
    return sa.delete(_s).where(_s.c.account == sa.bindparam("account"),
                               _s.c.name == sa.bindparam("name"))


class RepositoryQueries:
    """``RepositoryStore`` on a ``Database`` (``self.db``)."""

    db: Database

    async def get_repository(self, account: str, name: str) -> Repository | None:
        return repository_row(await self.db.read(
            lambda c: c.one(_by_name, account=account, name=name)))

    async def get_repository_by_id(self, repository_id: int) -> Repository | None:
        return repository_row(await self.db.read(lambda c: c.one(_by_id, id=repository_id)))

    async def ensure_repository(self, account: str, name: str) -> Repository:
        existing = await self.get_repository(account, name)
        if existing is not None:
            return existing

        def create(conn: Conn) -> Repository:
            # ON CONFLICT DO NOTHING, then read: whoever inserted first, both see that row
            # (on PostgreSQL the insert waits for a concurrent uncommitted insert of the key).
            conn.run(_ensure, account=account, name=name, now=time.time())
            repo = repository_row(conn.one(_by_name, account=account, name=name))
            assert repo is not None
            return repo

        return await self.db.write(create)

    async def create_repository(self, account: str, name: str, settings: RepositorySettings,
                                tags: Sequence[tuple[str, str]] = ()) -> Repository:
        pairs = dict(tags)
        if len(pairs) > REPOSITORY_TAG_LIMIT:
            raise TooManyTagsError(name)

        def create(conn: Conn) -> Repository:
            repository_id = conn.scalar(
                _create, account=account, name=name, now=time.time(),
                mutability=settings.image_tag_mutability,
                filters=json.dumps(list(settings.mutability_filters)),
                scan_on_push=int(settings.scan_on_push), encryption=settings.encryption_type,
                kms_key=settings.kms_key)
            if repository_id is None:
                raise RepositoryExistsError(name)
            conn.many(_put_tag, [dict(id=repository_id, key=k, value=v)
                                 for k, v in pairs.items()])
            repo = repository_row(conn.one(_by_id, id=repository_id))
            assert repo is not None
            return repo

        return await self.db.write(create)

    async def delete_repository(self, repository: Repository, *, force: bool,
                                events: Sequence[Event]) -> None:
        def delete(conn: Conn) -> None:
            if not lock_repository(conn, repository.id):
                return
            if not force and conn.one(_has_manifest, id=repository.id) is not None:
                raise RepositoryNotEmptyError(repository.name)
            conn.run(_delete, id=repository.id)
            append_events(conn, events, now=time.time())

        await self.db.write(delete)

    async def list_repositories(self, account: str, *, last: str | None, limit: int,
                                skip: int = 0) -> list[str]:
        rows = await self.db.read(lambda c: c.all(_names, account=account, last=last or "",
                                                  limit=limit, skip=skip))
        return [r[0] for r in rows]

    async def describe_repositories(self, account: str, *, after: str | None, limit: int,
                                    skip: int = 0) -> list[Repository]:
        rows = await self.db.read(lambda c: c.all(_described, account=account,
                                                  last=after or "", limit=limit, skip=skip))
        return [r for r in map(repository_row, rows) if r is not None]

    async def update_repository(self, repository_id: int, **fields: Any) -> None:
        unknown = set(fields) - set(_UPDATES)
        if unknown:
            raise ValueError(f"not repository settings: {sorted(unknown)}")
        if "mutability_filters" in fields:
            fields["mutability_filters"] = json.dumps(list(fields["mutability_filters"]))
        if "scan_on_push" in fields:
            fields["scan_on_push"] = int(fields["scan_on_push"])

        def update(conn: Conn) -> None:
            conn.notify(CHANGED)
            for column, value in fields.items():
                conn.run(_UPDATES[column], repo_id=repository_id, value=value)

        await self.db.write(update)

    async def repository_tags(self, repository_id: int) -> list[tuple[str, str]]:
        return [(k, v) for k, v in await self.db.read(lambda c: c.all(_tags, id=repository_id))]

    async def tag_repository(self, repository_id: int, tags: Sequence[tuple[str, str]]) -> None:
        def tag(conn: Conn) -> None:
            # The cap counts existing keys: lock the repository so two taggers cannot both
            # pass the check and together exceed it.
            lock_repository(conn, repository_id)
            existing = {r[0] for r in conn.all(_tag_keys, id=repository_id)}
            if len(existing | {k for k, _ in tags}) > REPOSITORY_TAG_LIMIT:
                raise TooManyTagsError(str(repository_id))
            conn.many(_put_tag, [dict(id=repository_id, key=k, value=v) for k, v in tags])

        await self.db.write(tag)

    async def untag_repository(self, repository_id: int, keys: Sequence[str]) -> None:
        await self.db.write(lambda c: c.many(_untag, [dict(id=repository_id, key=k)
                                                      for k in keys]))

    async def get_setting(self, account: str, name: str) -> str | None:
        return await self.db.read(lambda c: c.scalar(_setting, account=account, name=name))

    async def put_setting(self, account: str, name: str, value: str | None) -> bool:
        def put(conn: Conn) -> bool:
            if value is None:
                return conn.run(_delete_setting, account=account, name=name) > 0
            # Insert-or-nothing, then update: "existed" is exact even against a concurrent
            # first write of the same setting (the insert waits for it on PostgreSQL).
            now = time.time()
            if conn.one(_add_setting, account=account, name=name, value=value,
                        now=now) is not None:
                return False
            conn.run(_replace_setting, in_account=account, setting=name, new_value=value,
                     now=now)
            return True

        return await self.db.write(put)
