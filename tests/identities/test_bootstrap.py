"""First start: account, admin with full access, credentials file 0600; idempotent and race-safe."""

from __future__ import annotations

import asyncio
import configparser
import multiprocessing
import os
import stat

import pytest

from policies import PolicyKind, Principal, Request, evaluate, parse_policy
from registry.auth.bootstrap import (
    ADMIN_POLICY_NAME, BootstrapResult, bootstrap, credentials_path, usage_lines,
)
from registry.auth.identities import Identities
from registry.config import load_config


@pytest.fixture(params=["sqlite", "postgresql"])
def config(tmp_path, request):
    """A fresh data dir, its metadata in SQLite or in a fresh PostgreSQL database (the
    nodes of the race test then share it as a multi-node deployment does)."""
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("bootstrap")
    return load_config(environ={}, overrides={"data_dir": str(tmp_path / "data"),
                                              "region": "eu-west-1", "metadata.url": url,
                                              "metadata.upgrade": "auto"})


def _profile(path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(path)
    assert parser.sections() == ["default"]
    return dict(parser["default"])


def test_first_start_creates_admin_and_a_0600_credentials_file(config):
    result = bootstrap(config)
    assert isinstance(result, BootstrapResult)
    path = credentials_path(config)
    assert result.credentials_path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((config.data_dir / "master.key").stat().st_mode) == 0o600
    assert path.read_text().startswith("[default]\n")
    profile = _profile(path)
    assert sorted(profile) == ["aws_access_key_id", "aws_secret_access_key", "region"]
    assert profile["aws_access_key_id"] == result.access_key_id
    assert profile["region"] == "eu-west-1"

    store = Identities.from_config(config)
    try:
        user, secret = asyncio.run(store.lookup_access_key(result.access_key_id))
        assert secret == profile["aws_secret_access_key"]
        assert user == result.user
        assert (user.account, user.name) == ("000000000000", "admin")
        assert user.arn == "arn:aws:iam::000000000000:user/admin"
        stored = asyncio.run(store.policies_for(user))
        assert [name for name, _ in stored] == [ADMIN_POLICY_NAME]
        policies = [parse_policy(text, kind=PolicyKind.IDENTITY, name=name)
                    for name, text in stored]
    finally:
        store.close()
    for action, resource in [("ecr:PutImage", "arn:aws:ecr:eu-west-1:000000000000:repository/a"),
                             ("ecr:GetAuthorizationToken", "*"),
                             ("ecr:PutRegistryPolicy", "*")]:
        decision = evaluate(Request(Principal.from_arn(user.arn), action, resource), policies)
        assert decision.allowed, action


def test_botocore_reads_key_and_region_from_the_file(config, monkeypatch):
    botocore_session = pytest.importorskip("botocore.session")
    result = bootstrap(config)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(result.credentials_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config.data_dir / "no-such-config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    session = botocore_session.Session()
    assert session.get_credentials().access_key == result.access_key_id
    assert session.get_config_variable("region") == "eu-west-1"


def test_later_starts_return_none_and_touch_nothing(config):
    bootstrap(config)
    path = credentials_path(config)
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino)
    sqlite = config.metadata.backend == "sqlite"
    db_before = config.metadata_path.read_bytes() if sqlite else None
    assert bootstrap(config) is None
    assert bootstrap(config) is None
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before
    if sqlite:
        assert config.metadata_path.read_bytes() == db_before


def test_deleting_every_user_does_not_bring_the_admin_back(config):
    bootstrap(config)
    credentials_path(config).unlink()
    store = Identities.from_config(config)
    try:
        store.delete_user("000000000000", "admin", force=True)
        assert bootstrap(config, store=store) is None
        assert store.list_users() == []
    finally:
        store.close()
    assert not credentials_path(config).exists()


def test_no_bootstrap_when_identities_were_provisioned_first(config):
    config.data_dir.mkdir()
    store = Identities.from_config(config)
    try:
        store.create_user("123456789012", "ci")
        assert bootstrap(config, store=store) is None
        assert [u.name for u in store.list_users()] == ["ci"]
    finally:
        store.close()
    assert not credentials_path(config).exists()


def test_the_default_account_comes_from_config(tmp_path):
    config = load_config(environ={}, overrides={"data_dir": str(tmp_path),
                                                "default_account": "123456789012"})
    assert bootstrap(config).user.arn == "arn:aws:iam::123456789012:user/admin"


def test_a_stale_credentials_file_is_replaced_and_stays_0600(config):
    config.data_dir.mkdir()
    stale = credentials_path(config)
    stale.write_text("[default]\naws_access_key_id = AKIASTALE\n")
    stale.chmod(0o644)
    old = os.umask(0)
    try:
        result = bootstrap(config)
    finally:
        os.umask(old)
    assert _profile(stale)["aws_access_key_id"] == result.access_key_id
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600
    assert sorted(p.name for p in config.data_dir.iterdir()
                  if not p.name.startswith("metadata.db")) == ["credentials", "master.key"]


def test_if_the_file_cannot_be_written_nothing_is_created(config):
    credentials_path(config).mkdir(parents=True)  # a directory where the file should go
    with pytest.raises(OSError):
        bootstrap(config)
    store = Identities.from_config(config)
    try:
        assert store.list_users() == [] and store.list_accounts() == []
    finally:
        store.close()
    assert [p.name for p in config.data_dir.iterdir() if p.name.startswith(".")] == []
    credentials_path(config).rmdir()
    assert bootstrap(config) is not None  # the next start succeeds


def _start(config, barrier, results) -> None:
    barrier.wait()
    result = bootstrap(config)
    results.put(None if result is None else result.access_key_id)


def test_two_workers_starting_at_once_create_one_admin(config):
    ctx = multiprocessing.get_context("fork")
    workers = 4
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_start, args=(config, barrier, results)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    created = [key for key in outcomes if key is not None]
    assert len(created) == 1
    assert _profile(credentials_path(config))["aws_access_key_id"] == created[0]
    store = Identities.from_config(config)
    try:
        assert [u.name for u in store.list_users()] == ["admin"]
        assert [k.id for k in store.list_access_keys("000000000000", "admin")] == created
    finally:
        store.close()


def test_usage_lines_show_how_to_log_in_and_never_the_secret(config):
    result = bootstrap(config)
    lines = usage_lines(config, result.credentials_path, "localhost:5000")
    absolute = result.credentials_path.resolve()
    assert (f"  AWS_SHARED_CREDENTIALS_FILE={absolute} aws ecr get-login-password "
            "--endpoint-url http://localhost:5000 | docker login --username AWS "
            "--password-stdin localhost:5000") in lines
    assert any("boto3" in line and "http://localhost:5000" in line for line in lines)
    secret = _profile(result.credentials_path)["aws_secret_access_key"]
    assert all(secret not in line for line in lines)


def test_usage_lines_quote_a_path_with_spaces(tmp_path):
    config = load_config(environ={}, overrides={"data_dir": str(tmp_path / "my data")})
    lines = usage_lines(config, config.data_dir / "credentials", "h:1")
    assert f"AWS_SHARED_CREDENTIALS_FILE='{tmp_path}/my data/credentials' aws ecr" in "\n".join(lines)


@pytest.mark.parametrize("listen, shown", [("0.0.0.0:5000", "localhost:5000"),
                                           ("[::]:5001", "localhost:5001"),
                                           ("registry.lan:443", "registry.lan:443"),
                                           ("127.0.0.1:5000", "127.0.0.1:5000")])
def test_usage_lines_name_a_host_clients_can_reach(config, listen, shown):
    lines = "\n".join(usage_lines(config, config.data_dir / "credentials", listen))
    assert f"--endpoint-url http://{shown} |" in lines
    assert lines.count(f"--password-stdin {shown}\n") == 1
