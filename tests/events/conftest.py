from __future__ import annotations

import pytest

from registry.events import JobQueue
from registry.metadata.store import SQLiteMetadataStore
from tests.events.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path):
    store = SQLiteMetadataStore(tmp_path / "metadata.db")
    yield store
    await store.close()


@pytest.fixture
def queue(store, clock) -> JobQueue:
    return JobQueue(store, clock=clock)
