"""The metadata contract suite: every test here runs on every backend.

`store` is a migrated, empty ``SQLMetadataStore`` on SQLite (a file in tmp_path) and on
PostgreSQL (a fresh database on the session's cluster, tests/support/postgres.py); tests that
need two independent views of one database (two nodes) use `store_factory`, which opens
another store on the same database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from registry.config import load_config
from registry.metadata.factory import open_store
from registry.metadata.store import SQLMetadataStore

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def metadata_config(backend, tmp_path, request):
    """A Config whose metadata is a fresh database of ``backend``."""
    url = ""
    if backend == "postgresql":
        url = request.getfixturevalue("postgres").create_database("contract")
    return load_config(None, environ={}, overrides={
        "data_dir": str(tmp_path / "data"), "metadata.url": url, "metadata.upgrade": "auto"})


@pytest.fixture
async def store_factory(metadata_config) -> AsyncIterator[Callable[[], SQLMetadataStore]]:
    opened: list[SQLMetadataStore] = []

    def make() -> SQLMetadataStore:
        (metadata_config.data_dir).mkdir(parents=True, exist_ok=True)
        store = open_store(metadata_config)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory) -> SQLMetadataStore:
    return store_factory()
