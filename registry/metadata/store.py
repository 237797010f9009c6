"""The metadata store: every query mixin over one ``Database``, SQLite or PostgreSQL.

``SQLMetadataStore`` is the only implementation of ``base.MetadataStore``; both backends run
the same queries (``database.py`` explains how each executes them). Build one with
``factory.open_store(config)``.
"""

from __future__ import annotations

from pathlib import Path

from registry.metadata.collect import CollectQueries
from registry.metadata.database import Database, SQLiteDatabase
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
