"""The configuration keys of the integrity work: defaults, and ranges checked at load."""

from __future__ import annotations

import pytest

from registry.config import ConfigError, load_config


def test_defaults():
    config = load_config(environ={})
    assert config.storage.scrub_interval_seconds == 0  # off
    assert config.storage.scrub_bytes_per_second == 32 * 1024 * 1024
    assert config.uploads.max_sessions_per_repository == 1000
    assert config.uploads.max_sessions_per_principal == 2000


@pytest.mark.parametrize("variable,value,ok", [
    ("STORAGE__SCRUB_INTERVAL_SECONDS", "0", True),
    ("STORAGE__SCRUB_INTERVAL_SECONDS", "1", True),
    ("STORAGE__SCRUB_INTERVAL_SECONDS", "86400", True),
    ("STORAGE__SCRUB_INTERVAL_SECONDS", "-1", False),
    ("STORAGE__SCRUB_INTERVAL_SECONDS", "99999999999", False),
    ("STORAGE__SCRUB_BYTES_PER_SECOND", "1048576", True),
    ("STORAGE__SCRUB_BYTES_PER_SECOND", "0", False),
    ("STORAGE__SCRUB_BYTES_PER_SECOND", "1000", False),
    ("UPLOADS__MAX_SESSIONS_PER_REPOSITORY", "0", True),
    ("UPLOADS__MAX_SESSIONS_PER_REPOSITORY", "-1", False),
    ("UPLOADS__MAX_SESSIONS_PER_PRINCIPAL", "1000000", True),
    ("UPLOADS__MAX_SESSIONS_PER_PRINCIPAL", "1000001", False),
    ("UPLOADS__MAX_SESSIONS_PER_PRINCIPAL", "many", False),
])
def test_ranges(variable, value, ok):
    environ = {f"BERTH_{variable}": value}
    if ok:
        load_config(environ=environ)
        return
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    assert variable.lower().replace("__", ".") in str(info.value)
