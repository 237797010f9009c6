"""The real-client tests of the registry core run with authorization off: they exercise the
OCI protocol paths. Authenticated flows (docker login, denials) live in tests/ecr/."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def berth_server_options() -> dict:
    return {"env": {"BERTH_AUTH__ENABLED": "false"}}
