"""BERTH_TEST_METADATA reaches every server the suite starts (tests/support/metadata.py).

The live cases hold in either mode: with `sqlite` no server is given a database URL; with
`postgresql` each server started by `berth` or `fresh_berth` gets its own new database in
BERTH_METADATA__URL, keeps it across a restart, and keeps it when a test passes its own env
(as the nested `berth_server_options` overrides do). The last test re-runs the live cases in
a child pytest with BERTH_TEST_METADATA=postgresql, so the default run proves both modes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.metadata import (UPGRADE_ENV, URL_ENV, metadata_backend, test_config_overrides,
                                    with_metadata_url)

ROOT = Path(__file__).resolve().parents[2]
URL = "postgresql://postgres@127.0.0.1:5999/berth_0123"

BACKEND_CASES = [
    ("unset means sqlite", {}, "sqlite"),
    ("empty means sqlite", {"BERTH_TEST_METADATA": ""}, "sqlite"),
    ("sqlite", {"BERTH_TEST_METADATA": "sqlite"}, "sqlite"),
    ("postgresql, any case", {"BERTH_TEST_METADATA": "PostgreSQL"}, "postgresql"),
]
MERGE_CASES = [
    ("sqlite adds nothing", {}, None, {}),
    ("sqlite keeps other options", {"workers": 1, "env": {"A": "1"}}, None,
     {"workers": 1, "env": {"A": "1"}}),
    ("postgresql adds the url", {}, URL, {"env": {URL_ENV: URL, UPGRADE_ENV: "auto"}}),
    ("postgresql joins an override's env", {"env": {"BERTH_AUTH__ENABLED": "false"}}, URL,
     {"env": {URL_ENV: URL, UPGRADE_ENV: "auto", "BERTH_AUTH__ENABLED": "false"}}),
    ("a url the test set itself wins", {"env": {URL_ENV: "postgresql:///mine"}}, URL,
     {"env": {URL_ENV: "postgresql:///mine", UPGRADE_ENV: "auto"}}),
]


@pytest.mark.parametrize(("why", "environ", "expected"), BACKEND_CASES,
                         ids=[case[0] for case in BACKEND_CASES])
def test_backend_switch(why, environ, expected):
    assert metadata_backend(environ) == expected


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="BERTH_TEST_METADATA='mysql': use one of sqlite, "
                                         "postgresql"):
        metadata_backend({"BERTH_TEST_METADATA": "mysql"})


@pytest.mark.parametrize(("why", "options", "url", "expected"), MERGE_CASES,
                         ids=[case[0] for case in MERGE_CASES])
def test_server_options_get_the_url(why, options, url, expected):
    assert with_metadata_url(options, url) == expected


def test_in_process_config_overrides():
    assert test_config_overrides(None) == {}
    assert test_config_overrides(URL) == {"metadata.url": URL, "metadata.upgrade": "auto"}


# -- live servers (either mode) --------------------------------------------------------------


def process_env(pid: int) -> dict[str, str]:
    """The environment a running process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def assert_metadata_env(server, backend: str) -> str | None:
    url = process_env(server.pid).get(URL_ENV)
    if backend == "sqlite":
        assert url is None
        return None
    import psycopg

    assert url is not None and url.startswith("postgresql://postgres@127.0.0.1:")
    with psycopg.connect(url) as conn:  # the database exists
        assert conn.execute("SELECT current_database()").fetchone()[0] == url.rsplit("/", 1)[1]
    return url


def test_shared_berth_gets_a_database(berth, metadata_backend):
    assert_metadata_env(berth, metadata_backend)


def test_fresh_berth_servers_get_their_own_databases(fresh_berth, metadata_backend):
    first = fresh_berth()
    second = fresh_berth(env={"BERTH_AUTH__ENABLED": "false"})  # as a nested override does
    first_url = assert_metadata_env(first, metadata_backend)
    second_url = assert_metadata_env(second, metadata_backend)
    assert process_env(second.pid)["BERTH_AUTH__ENABLED"] == "false"
    if metadata_backend == "postgresql":
        assert first_url != second_url
    first.restart()
    assert assert_metadata_env(first, metadata_backend) == first_url


def test_postgresql_mode_reaches_servers():
    live = [f"{__file__}::test_shared_berth_gets_a_database",
            f"{__file__}::test_fresh_berth_servers_get_their_own_databases"]
    env = {**os.environ, "BERTH_TEST_METADATA": "postgresql", "BERTH_TEST_REGISTRY": "berth"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *live], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
