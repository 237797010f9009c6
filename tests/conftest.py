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

Metadata database
    BERTH_TEST_METADATA=sqlite (default) or postgresql picks the backend for the session
    (tests/support/metadata.py). With postgresql, every server `berth` and `fresh_berth` start
    gets BERTH_METADATA__URL naming a database of its own (kept across restarts); it is added
    here rather than in `berth_server_options`, so nested overrides of that fixture keep it.
    postgres               the session's PostgreSQL cluster (tests/support/postgres.py), started
                           on first use; fails (never skips) when PostgreSQL is not installed
    metadata_url_factory   `() -> str | None`: a fresh database URL, or None for SQLite
    metadata_url           one such URL (or None) for the current test; in-process apps pass
                           `test_config_overrides(metadata_url)` to load_config

S3 (Ceph RADOS Gateway)
    rgw            the session's single-node Ceph cluster with radosgw (tests/support/ceph.py),
                   started on first use; fails (never skips) when Ceph is not installed. Its
                   ports are fixed, so one runs per machine (a second pytest run waits on
                   /tmp/berth-ceph.lock, then fails with a clear message)
    s3_bucket      a brand-new empty bucket for this test; emptied and deleted afterwards

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
from typing import TYPE_CHECKING

import pytest

from tests.support.metadata import metadata_backend as _metadata_backend
from tests.support.metadata import with_metadata_url
from tests.support.oci_client import OciClient
from tests.support.server import RegistryProcess, server_class
from tests.support.tools import Docker, Skopeo, ToolMissing, static_busybox

if TYPE_CHECKING:
    from tests.support.ceph import CephRGW
    from tests.support.postgres import PostgresCluster

REGISTRY_KIND = os.environ.get("BERTH_TEST_REGISTRY", "berth")


def pytest_configure(config) -> None:
    try:
        _metadata_backend()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster: created when a test first asks for it."""
    # Imported here: a SQLite session never loads psycopg.
    from tests.support.postgres import PostgresMissing, shared_cluster

    try:
        cluster = shared_cluster()
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def rgw() -> Iterator[CephRGW]:
    """The session's Ceph cluster with the RADOS Gateway: created when a test first asks."""
    from tests.support.ceph import CephBusy, CephMissing, CephPortsBusy, shared_rgw

    gateway, message = None, ""
    try:
        gateway = shared_rgw()
    except (CephMissing, CephBusy, CephPortsBusy) as exc:
        message = str(exc)
    if gateway is None:  # failed outside the except block: no chained traceback
        pytest.fail(message, pytrace=False)
    yield gateway
    gateway.stop()


@pytest.fixture
def s3_bucket(request, rgw) -> Iterator[str]:
    """A bucket of its own for this test, `<test name>-<12 hex>` (DNS style, at most 63
    characters); afterwards its uploads, objects and the bucket itself are deleted, so
    memstore's RAM does not fill up over a session."""
    from botocore.exceptions import BotoCoreError, ClientError

    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-") or "t"
    name = rgw.create_bucket(f"{stem}-{uuid.uuid4().hex[:12]}")
    yield name
    try:
        rgw.delete_bucket(name)
    except (BotoCoreError, ClientError):
        pass  # the gateway stopped by a fault test, or the cluster gone: nothing to keep


@pytest.fixture(scope="session")
def metadata_backend() -> str:
    """`sqlite` or `postgresql`, from BERTH_TEST_METADATA."""
    return _metadata_backend()


@pytest.fixture(scope="session")
def metadata_url_factory(request, metadata_backend) -> Callable[[], str | None]:
    """`make()` returns a brand-new database URL, or None when the backend is SQLite (the
    server then keeps its metadata in its data directory)."""
    if metadata_backend == "sqlite":
        return lambda: None
    # Asked for only here, so a SQLite session never starts PostgreSQL.
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return lambda: cluster.create_database("berth")


@pytest.fixture
def metadata_url(metadata_url_factory) -> str | None:
    """A fresh database for this test (None for SQLite)."""
    return metadata_url_factory()


def _server_metadata_url(metadata_url_factory) -> str | None:
    # Distribution keeps no metadata database; only Berth servers get one.
    return metadata_url_factory() if REGISTRY_KIND == "berth" else None


@pytest.fixture(scope="session")
def berth_server_options() -> dict:
    """Keyword arguments for every BerthServer this session starts (extra_args, env, ...)."""
    return {}


@pytest.fixture(scope="session")
def berth(tmp_path_factory, berth_server_options,
          metadata_url_factory) -> Iterator[RegistryProcess]:
    options = with_metadata_url(berth_server_options, _server_metadata_url(metadata_url_factory))
    server = server_class(REGISTRY_KIND)(tmp_path_factory.mktemp("berth-shared"), **options)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_berth(tmp_path_factory, berth_server_options,
                metadata_url_factory) -> Iterator[Callable[..., RegistryProcess]]:
    """Factory: `fresh_berth(**kwargs)` starts a new server on its own data dir (and its own
    metadata database); all are stopped after the test."""
    started: list[RegistryProcess] = []

    def make(**kwargs) -> RegistryProcess:
        options = with_metadata_url({**berth_server_options, **kwargs},
                                    _server_metadata_url(metadata_url_factory))
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
