"""The metadata store: every query mixin over one ``Database``, SQLite or PostgreSQL.

``SQLMetadataStore`` is the only implementation of ``base.MetadataStore``; both backends run
the same queries (``database.py`` explains how each executes them). Build one with
``factory.open_store(config)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

from registry.metadata.collect import CollectQueries
from registry.metadata.database import Database, SQLiteDatabase
from registry.metadata.models import ManifestRecord, Repository
from registry.metadata.readcache import CHANGED, ReadCache
from registry.metadata.eventlog import EventLogQueries
from registry.metadata.identities import IdentityQueries
from registry.metadata.integrity import IntegrityQueries
from registry.metadata.jobs import JobQueries
from registry.metadata.manifests import ManifestQueries
from registry.metadata.repositories import RepositoryQueries
from registry.metadata.scans import ScanQueries
from registry.metadata.webhooks import WebhookQueries


class SQLMetadataStore(RepositoryQueries, ManifestQueries, ScanQueries, CollectQueries,
                       IntegrityQueries, IdentityQueries, EventLogQueries, JobQueries,
                       WebhookQueries):
    def __init__(self, database: Database, *, path: Path | None = None) -> None:
        self.db = database
        self.path = path  # the SQLite file, for tools that report where the data is
        # PostgreSQL only: on SQLite the two lookups cost less than the cache would, and
        # every process already sees every commit at once.
        self._pull_cache: ReadCache | None = None
        if database.dialect == "postgresql":
            self._pull_cache = ReadCache()
            database.subscribe(CHANGED, self._pull_cache.clear)

    async def get_repository(self, account: str, name: str) -> Repository | None:
        if self._pull_cache is None:
            return await super().get_repository(account, name)
        return await self._cached(("repository", account, name),
                                  lambda: super(SQLMetadataStore, self).get_repository(
                                      account, name))

    async def resolve_tag(self, repository_id: int, tag: str) -> ManifestRecord | None:
        if self._pull_cache is None:
            return await super().resolve_tag(repository_id, tag)
        return await self._cached(("tag", repository_id, tag),
                                  lambda: super(SQLMetadataStore, self).resolve_tag(
                                      repository_id, tag))

    async def _cached(self, key: tuple, load: Callable[[], Awaitable[Any]]) -> Any:
        cache = self._pull_cache
        found = cache.get(key)
        if found is None:
            generation = cache.generation()  # before the read: see ReadCache.put
            found = await load()
            cache.put(key, found, generation)
        return found

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def close(self) -> None:
        await self.db.close()


def SQLiteMetadataStore(path: Path) -> SQLMetadataStore:  # noqa: N802 - reads like the class
    """The store on the SQLite file at ``path``, its schema brought up to date first."""
    from registry.metadata.migrate import upgrade_sqlite

    upgrade_sqlite(Path(path))
    return SQLMetadataStore(SQLiteDatabase(Path(path)), path=Path(path))
