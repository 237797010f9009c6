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
    assert "gc.grace_seconds: between 60 and 2592000 seconds, got -1" in problems


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


# -- intervals and durations: every one range-checked, with a message that says why -----------

@pytest.mark.parametrize("key,value,message", [
    ("auth.policy_reload_seconds", 0, "auth.policy_reload_seconds: between 1 and 86400 seconds, got 0"),
    ("auth.policy_reload_seconds", -5, "between 1 and 86400 seconds, got -5"),
    ("auth.policy_reload_seconds", 86401, "between 1 and 86400 seconds, got 86401"),
    ("auth.token_ttl_seconds", 0, "auth.token_ttl_seconds: between 60 and 43200 seconds, got 0 "
                                  "(ECR's tokens last 12 hours at most)"),
    ("auth.token_ttl_seconds", 43201, "between 60 and 43200 seconds, got 43201"),
    ("uploads.stale_after_seconds", 0, "uploads.stale_after_seconds: between 60 and 2592000 "
                                       "seconds, got 0 (a shorter age would remove uploads "
                                       "still in progress)"),
    ("uploads.cleanup_interval_seconds", 0, "uploads.cleanup_interval_seconds: between 1 and "
                                            "86400 seconds, got 0"),
    ("gc.interval_seconds", 0, "gc.interval_seconds: between 60 and 2592000 seconds, got 0 "
                               "(each pass walks every blob; set gc.enabled = false"),
    ("gc.grace_seconds", 59, "gc.grace_seconds: between 60 and 2592000 seconds, got 59"),
    ("gc.grace_seconds", 10**40, "gc.grace_seconds: between 60 and 2592000 seconds"),
    ("scanner.timeout_seconds", 0, "scanner.timeout_seconds: between 1 and 86400 seconds, got 0"),
    ("scanner.db_check_seconds", 0, "scanner.db_check_seconds: between 1 and 86400 seconds"),
    ("scanner.db_check_seconds", 86401, "scanner.db_check_seconds: between 1 and 86400 seconds"),
])
def test_durations_out_of_range(key, value, message):
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides={key: value})
    assert any(message in problem for problem in info.value.problems), info.value.problems


@pytest.mark.parametrize("key,value", [
    ("auth.policy_reload_seconds", 1), ("auth.policy_reload_seconds", 86400),
    ("auth.token_ttl_seconds", 60), ("auth.token_ttl_seconds", 43200),
    ("uploads.stale_after_seconds", 60), ("uploads.cleanup_interval_seconds", 1),
    ("gc.interval_seconds", 60), ("gc.grace_seconds", 2592000),
    ("scanner.timeout_seconds", 1), ("scanner.db_check_seconds", 86400),
])
def test_durations_at_the_bounds_are_accepted(key, value):
    section, name = key.split(".")
    assert getattr(getattr(load_config(environ={}, overrides={key: value}), section), name) == value


def test_every_duration_key_is_range_checked():
    """A new *_seconds key must join the table (a 0 interval would be a busy loop)."""
    from registry.config import DURATIONS, Config

    checked = {name for name, *_ in DURATIONS}
    found = {f"{section.name}.{f.name}" for section in dataclasses.fields(Config)
             if dataclasses.is_dataclass(section.default_factory)
             for f in dataclasses.fields(section.default_factory) if f.name.endswith("_seconds")}
    assert found == checked


def test_defaults_are_inside_their_ranges():
    from registry.config import DURATIONS

    config = load_config(environ={})
    for name, low, high, _ in DURATIONS:
        section, key = name.split(".")
        assert low <= getattr(getattr(config, section), key) <= high, name


def test_a_zero_interval_from_the_environment_is_refused():
    with pytest.raises(ConfigError, match="auth.policy_reload_seconds: between 1 and 86400"):
        load_config(environ={"BERTH_AUTH__POLICY_RELOAD_SECONDS": "0"})


# -- unknown BERTH_* variables: warned about by name, ignored --------------------------------

@pytest.mark.parametrize("variables,named", [
    ({"BERTH_CACHE": "/tmp/c"}, ["BERTH_CACHE"]),
    ({"BERTH_SERVER__WORKRES": "2"}, ["BERTH_SERVER__WORKRES"]),
    ({"BERTH_SERVER": "x"}, ["BERTH_SERVER"]),  # a section, not a key
    ({"BERTH_WEBHOOKS": "https://example.com"}, ["BERTH_WEBHOOKS"]),  # tables only in files
    ({"BERTH_REGION__X": "1", "BERTH_NOPE": "1"}, ["BERTH_NOPE", "BERTH_REGION__X"]),
])
def test_unknown_environment_variables_are_warned_about_and_ignored(variables, named):
    # (BERTH_TEST_* are the test suite's switches: neither config nor warned about.)
    warnings: list[str] = []
    config = load_config(environ={**variables, "BERTH_SERVER__WORKERS": "3"},
                         warn=warnings.append)
    assert config.server.workers == 3  # the known variable still applies
    assert len(warnings) == 1
    assert warnings[0].endswith(": " + ", ".join(named))
    for value in variables.values():
        assert value not in warnings[0]  # names only: a value may be a secret


def test_known_variables_produce_no_warning():
    warnings: list[str] = []
    load_config(environ={"BERTH_DATA_DIR": "/srv/b", "BERTH_AUTH__ENABLED": "false",
                         "BERTH_": "", "PATH": "/bin"}, warn=warnings.append)
    assert warnings == []


def test_unknown_variable_warning_goes_to_stderr_by_default(capsys):
    load_config(environ={"BERTH_TYPO": "1"})
    err = capsys.readouterr().err
    assert err.startswith("berth: warning: ") and "BERTH_TYPO" in err and err.count("\n") == 1


def test_unknown_keys_in_a_file_stay_errors(tmp_path):
    path = tmp_path / "berth.toml"
    path.write_text("[server]\nworkres = 2\n")
    with pytest.raises(ConfigError, match="server.workres: unknown key"):
        load_config(path, environ={})


def test_bad_value_of_a_known_variable_stays_an_error():
    with pytest.raises(ConfigError, match="server.workers: expected an integer"):
        load_config(environ={"BERTH_SERVER__WORKERS": "many"}, warn=lambda m: None)


def test_the_test_suites_switches_are_not_configuration():
    warnings: list[str] = []
    load_config(environ={"BERTH_TEST_METADATA": "postgresql", "BERTH_TEST_REGISTRY": "x"},
                warn=warnings.append)
    assert warnings == []


# -- [keys] ------------------------------------------------------------------------------------

def test_keys_default_to_the_data_directory_key():
    keys = load_config(environ={}).keys
    assert (keys.key_file, keys.previous_key_files) == ("", ())


def test_keys_from_a_file_and_from_the_environment(tmp_path):
    path = tmp_path / "berth.toml"
    path.write_text('[keys]\nkey_file = "/etc/berth/new.key"\n'
                    'previous_key_files = ["/etc/berth/old.key", "/etc/berth/older.key"]\n')
    keys = load_config(path, environ={}).keys
    assert keys.key_file == "/etc/berth/new.key"
    assert keys.previous_key_files == ("/etc/berth/old.key", "/etc/berth/older.key")
    warnings: list[str] = []
    keys = load_config(environ={"BERTH_KEYS__KEY_FILE": "/k/new",
                                "BERTH_KEYS__PREVIOUS_KEY_FILES": "/k/old,/k/older"},
                       warn=warnings.append).keys
    assert (keys.key_file, keys.previous_key_files) == ("/k/new", ("/k/old", "/k/older"))
    assert warnings == []


@pytest.mark.parametrize("toml,message", [
    ('key_file = 32', "keys.key_file: expected a string"),
    ('previous_key_files = ["/k/a", 1]', "keys.previous_key_files: expected a list of strings"),
    ('kms_key = "x"', "keys.kms_key: unknown key"),
    ('key_file = " /k/new"', "keys.key_file: a path without surrounding spaces"),
    ('previous_key_files = [""]', "keys.previous_key_files: '' is not a path"),
    ('key_file = "/k/new"\nprevious_key_files = ["/k/old", "/k/./old"]',
     "keys.previous_key_files: /k/./old is listed twice"),
    ('key_file = "/k/new"\nprevious_key_files = ["/k/new"]',
     "keys.previous_key_files: /k/new is listed twice, or is keys.key_file itself"),
])
def test_bad_keys_settings_are_configuration_errors(tmp_path, toml, message):
    path = tmp_path / "berth.toml"
    path.write_text(f"[keys]\n{toml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert message in "\n".join(info.value.problems)
