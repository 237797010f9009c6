"""Which metadata database the suite runs on, and how a server or an app is pointed at it.

`BERTH_TEST_METADATA` picks the backend for a whole pytest session: `sqlite` (the default,
a file in each server's data directory, nothing to set up) or `postgresql` (one fresh
database per server or app on the session's PostgreSQL cluster, tests/support/postgres.py),
so the same suite proves both backends. The server reads the database URL from the config
key `[metadata] url` (env `BERTH_METADATA__URL`); empty means SQLite in the data directory,
which is why the sqlite mode passes nothing at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ENV_SWITCH = "BERTH_TEST_METADATA"
BACKENDS = ("sqlite", "postgresql")
URL_ENV = "BERTH_METADATA__URL"


def metadata_backend(environ: Mapping[str, str] = os.environ) -> str:
    """The backend named by `BERTH_TEST_METADATA` (default `sqlite`).

    Raises:
        ValueError: the variable names another backend.
    """
    value = environ.get(ENV_SWITCH, "").strip().lower() or "sqlite"
    if value not in BACKENDS:
        raise ValueError(f"{ENV_SWITCH}={environ[ENV_SWITCH]!r}: use one of "
                         + ", ".join(BACKENDS))
    return value


UPGRADE_ENV = "BERTH_METADATA__UPGRADE"


def server_env(url: str | None) -> dict[str, str]:
    """Environment entries that point a `berth serve` process at `url` (none for SQLite).

    The server creates the schema itself (on PostgreSQL it would otherwise refuse to start
    until `berth db upgrade` ran)."""
    return {URL_ENV: url, UPGRADE_ENV: "auto"} if url else {}


def session_database(prefix: str = "berth") -> str | None:
    """A fresh database on the session's cluster when the switch says postgresql, else None.

    For servers and configs that tests build directly rather than through the fixtures."""
    if metadata_backend() != "postgresql":
        return None
    from tests.support.postgres import shared_cluster

    return shared_cluster().create_database(prefix)


def with_metadata_url(options: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    """`options` (RegistryProcess keyword arguments) with `url` added to their env.

    An env entry the caller set explicitly wins, so a test can still pin its own URL.
    """
    merged = dict(options)
    env = {**server_env(url), **(options.get("env") or {})}
    if env:
        merged["env"] = env
    return merged


def test_config_overrides(url: str | None) -> dict[str, str]:
    """`load_config(overrides=...)` entries that point an in-process app at `url`.

    Empty for SQLite, so callers can always merge it in:
    `load_config(environ={}, overrides={"data_dir": ..., **test_config_overrides(url)})`.
    """
    return {"metadata.url": url, "metadata.upgrade": "auto"} if url else {}


test_config_overrides.__test__ = False  # a helper named test_*, not a test


_SERVER_ENVS: dict[str, dict[str, str]] = {}


def remember_server(data_dir, env: Mapping[str, str]) -> None:
    """Record which database a server on ``data_dir`` uses, for ``cli_env``."""
    chosen = {k: v for k, v in env.items() if k in (URL_ENV, UPGRADE_ENV)}
    if chosen:
        _SERVER_ENVS[os.path.realpath(data_dir)] = chosen


def cli_env(data_dir, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a `berth` command run against the server on ``data_dir``: the
    same metadata database as that server (SQLite needs nothing: it is in the data dir)."""
    env = dict(os.environ if base is None else base)
    env.update(_SERVER_ENVS.get(os.path.realpath(data_dir), {}))
    return env
