"""The metadata store: every query mixin over one ``Database``, SQLite or PostgreSQL.

``SQLMetadataStore`` is the only implementation of ``base.MetadataStore``; both backends run
the same queries (``database.py`` explains how each executes them). Build one with
``factory.open_store(config)``.
"""

from __future__ import annotations

from pathlib import Path

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
        cache = self._pull_cache
        if cache is None:
            return await super().get_repository(account, name)
        key = ("repository", account, name)
        found = cache.get(key)
        if found is None:
            generation = cache.generation()
            found = await super().get_repository(account, name)
            cache.put(key, found, generation)
        return found

    async def resolve_tag(self, repository_id: int, tag: str) -> ManifestRecord | None:
        cache = self._pull_cache
        if cache is None:
            return await super().resolve_tag(repository_id, tag)
        key = ("tag", repository_id, tag)
        found = cache.get(key)
        if found is None:
            generation = cache.generation()
            found = await super().resolve_tag(repository_id, tag)
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
