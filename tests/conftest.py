"""Suite-wide fixtures: live registry servers and the real client tools.

Servers
    berth          one Berth server for the whole session (client tests share it; each test
                   uses its own repository names, see `repo`)
    fresh_berth    factory for tests that need a server of their own (crash tests, restarts)
    oci            a tiny HTTP client (tests/support/oci_client.py) bound to `berth`

    BERTH_TEST_REGISTRY=distribution runs the same tests against CNCF Distribution
    (/usr/bin/docker-registry), the reference they were validated against; Berth-only features
    such as the referrers API fail there by design.

    Later issues (auth) pass extra server arguments or environment by overriding the
    `berth_server_options` fixture in a nested conftest.

Tools
    docker, skopeo, busybox fail (never skip) when the tool, the engine or busybox-static is
    missing: the test command, scripts/test.sh, installs and starts them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.oci_client import OciClient
from tests.support.server import RegistryProcess, server_class
from tests.support.tools import Docker, Skopeo, ToolMissing, static_busybox

REGISTRY_KIND = os.environ.get("BERTH_TEST_REGISTRY", "berth")


@pytest.fixture(scope="session")
def berth_server_options() -> dict:
    """Keyword arguments for every BerthServer this session starts (extra_args, env, ...)."""
    return {}


@pytest.fixture(scope="session")
def berth(tmp_path_factory, berth_server_options) -> Iterator[RegistryProcess]:
    server = server_class(REGISTRY_KIND)(
        tmp_path_factory.mktemp("berth-shared"), **berth_server_options
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_berth(tmp_path_factory, berth_server_options) -> Iterator[Callable[..., RegistryProcess]]:
    """Factory: `fresh_berth(**kwargs)` starts a new server on its own data dir; all are stopped
    after the test."""
    started: list[RegistryProcess] = []

    def make(**kwargs) -> RegistryProcess:
        options = {**berth_server_options, **kwargs}
        server = server_class(REGISTRY_KIND)(tmp_path_factory.mktemp("berth-fresh"), **options)
        started.append(server)
        return server.start()

    make.servers = started  # type: ignore[attr-defined]  (read by the failure-log hook)
    yield make
    for server in started:
        server.stop()


@pytest.fixture
def oci(berth) -> OciClient:
    return OciClient(berth.url)


@pytest.fixture
def repo(request) -> str:
    """A repository name unique to this test: `<test name>/<8 hex>` in the spec's grammar."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60] or "test"
    return f"{name}/{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def docker() -> Docker:
    try:
        return Docker()
    except ToolMissing as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def skopeo() -> Skopeo:
    try:
        return Skopeo()
    except ToolMissing as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def busybox() -> Path:
    """/bin/busybox from busybox-static: the one binary the test images run."""
    try:
        return Path(static_busybox())
    except ToolMissing as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every involved server's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    servers: list[RegistryProcess] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, RegistryProcess):
            servers.append(value)
        servers.extend(getattr(value, "servers", []))
    for server in dict.fromkeys(servers):
        report.sections.append(
            (f"{server.name} log tail ({server.log_path})", server.log_tail(80))
        )
