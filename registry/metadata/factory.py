"""Opening the metadata store a config names: the only place that picks a backend."""

from __future__ import annotations

from registry.config import Config
from registry.metadata.database import Database, PoolSettings, PostgresDatabase, SQLiteDatabase
from registry.metadata.migrate import check, upgrade
from registry.metadata.store import SQLMetadataStore


def open_database(config: Config) -> Database:
    if config.metadata.backend == "postgresql":
        return PostgresDatabase(config.metadata.url,
                                pool=PoolSettings(size=config.metadata.pool_size))
    return SQLiteDatabase(config.metadata_path)


def prepare_schema(config: Config) -> None:
    """Upgrade the schema when the config says so, else check it is current.

    Raises:
        SchemaBehindError: the database needs ``berth db upgrade``.
    """
    database = open_database(config)
    try:
        engine = database.engine()
        if config.metadata.auto_upgrade:
            lock = config.metadata_path.with_name("metadata.db.migrate.lock") \
                if database.dialect == "sqlite" else None
            upgrade(engine, lock_path=lock)
        else:
            check(engine)
    finally:
        database.close_sync()


def open_store(config: Config, *, prepare: bool = True) -> SQLMetadataStore:
    """The store for ``config``; ``prepare``: run ``prepare_schema`` first."""
    if prepare:
        prepare_schema(config)
    database = open_database(config)
    return SQLMetadataStore(database, path=config.metadata_path
                            if database.dialect == "sqlite" else None)
