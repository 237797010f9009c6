"""In-process live server for protocol tests: the real app on a real port, per test."""

from __future__ import annotations

import pytest

from registry.app import create_app
from registry.config import load_config
from tests.support.metadata import session_database, test_config_overrides


@pytest.fixture
def config(tmp_path):
    return load_config(environ={}, overrides={"data_dir": str(tmp_path / "data"),
                                              "gc.enabled": False,
                                              "auth.enabled": False,
                                              **test_config_overrides(session_database())})


@pytest.fixture
async def client(aiohttp_client, config):
    app = create_app(config)
    return await aiohttp_client(app)
