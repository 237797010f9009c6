"""Configuration: one frozen tree, every problem reported together (STYLE 7)."""

from __future__ import annotations

import dataclasses

import pytest

from registry.config import ConfigError, load_config


def test_defaults_need_nothing():
    config = load_config(environ={})
    assert config.server.listen == "127.0.0.1:5000"
    assert str(config.data_dir) == "berth-data"
    assert config.server.workers == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.region = "x"  # type: ignore[misc]


def test_file_environment_and_overrides(tmp_path):
    path = tmp_path / "berth.toml"
    path.write_text('region = "eu-west-1"\n[server]\nworkers = 3\nlisten = "0.0.0.0:6000"\n')
    config = load_config(path, environ={"BERTH_SERVER__WORKERS": "4"},
                         overrides={"server.listen": "127.0.0.1:7000"})
    assert config.region == "eu-west-1"
    assert config.server.workers == 4
    assert config.server.listen == "127.0.0.1:7000"


def test_all_problems_reported_together(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('colour = "blue"\n[storage]\nbackend = "floppy"\n[server]\nworkers = "many"\n'
                    '[gc]\ngrace_seconds = -1\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    problems = "\n".join(info.value.problems)
    assert "colour: unknown key" in problems
    assert "server.workers: expected an integer" in problems
    assert "storage.backend: unknown backend 'floppy'" in problems
    assert "gc.grace_seconds: must not be negative" in problems


def test_unknown_backend_is_an_error():
    with pytest.raises(ConfigError, match="unknown backend 'floppy'"):
        load_config(environ={"BERTH_STORAGE__BACKEND": "floppy"})


@pytest.mark.parametrize("key,value,message", [
    ("server.listen", "nonsense", "expected HOST:PORT"),
    ("server.workers", 0, "between 1 and 64"),
    ("region", "Mars", "not a region name"),
    ("default_account", "123", "12-digit"),
    ("log_level", "loud", "log_level"),
])
def test_invalid_values(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ={}, overrides={key: value})


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad, environ={})
