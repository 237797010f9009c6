"""The job runtime's tests run on every metadata backend: `store` (and `store_factory`, a
second node on the same database) come from the metadata contract suite."""

from __future__ import annotations

import pytest

from registry.events import JobQueue
from tests.events.fakes import FakeClock
from tests.metadata.conftest import backend, metadata_config, store, store_factory  # noqa: F401


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(store, clock) -> JobQueue:
    return JobQueue(store, clock=clock)
