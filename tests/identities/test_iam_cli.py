"""`berth iam`: aws-iam-shaped JSON, clear errors, exit codes, and no secret where not intended.

Runs `python3 -m registry iam ...` in a subprocess once `berth` has the `iam` command hooked in;
until then, the command's own `register` on a fresh argparse parser, in process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from registry.auth import iam_cli
from registry.auth.identities import Identities
from registry.config import load_config
from registry.logs import JSONFormatter
from tests.identities.conftest import BROKEN_POLICY, PULL_POLICY, PUSH_POLICY

ROOT = Path(__file__).resolve().parents[2]


def _berth_has_iam() -> bool:
    from registry.cli import build_parser

    return any("iam" in (getattr(action, "choices", None) or {})
               for action in build_parser()._subparsers._group_actions)


HOOKED = _berth_has_iam()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


class Cli:
    """Runs `iam` commands against one data dir and keeps every byte they emitted (stdout,
    stderr and, in process, every log record at DEBUG) for the secret-leak checks."""

    def __init__(self, data: Path, capsys, caplog, *, in_process: bool) -> None:
        self.data, self.capsys, self.caplog = data, capsys, caplog
        self.in_process = in_process
        self.transcript: list[tuple[str, str, str]] = []  # (command, stream, text)

    def __call__(self, *argv: str, data: bool = True) -> Result:
        args = ["iam", *argv, *(["--data", str(self.data)] if data else [])]
        if not self.in_process:
            proc = subprocess.run([sys.executable, "-m", "registry", *args], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
            result = Result(proc.returncode, proc.stdout, proc.stderr)
            logs = ""
        else:
            self.capsys.readouterr()
            self.caplog.clear()
            with self.caplog.at_level(logging.DEBUG):
                code = iam_cli.main(args)
            captured = self.capsys.readouterr()
            result = Result(code, captured.out, captured.err)
            formatter = JSONFormatter()
            logs = "\n".join(formatter.format(record) for record in self.caplog.records)
        for stream, text in (("stdout", result.out), ("stderr", result.err), ("logs", logs)):
            self.transcript.append((argv[0], stream, text))
        return result


def _make_cli(tmp_path, capsys, caplog, *, in_process: bool) -> Cli:
    data = tmp_path / "data"
    data.mkdir()
    return Cli(data, capsys, caplog, in_process=in_process)


@pytest.fixture
def cli(tmp_path, capsys, caplog) -> Cli:
    return _make_cli(tmp_path, capsys, caplog, in_process=not HOOKED)


@pytest.fixture(params=["in-process", "subprocess"])
def any_cli(request, tmp_path, capsys, caplog) -> Cli:
    """Both ways: in process every log record is captured at DEBUG and searched too."""
    return _make_cli(tmp_path, capsys, caplog, in_process=request.param == "in-process")


def _iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return parsed


def test_create_user_and_list_users_print_iams_shape(cli):
    created = cli("create-user", "--user-name", "alice")
    assert created.code == 0, created.err
    user = created.json()["User"]
    assert set(user) == {"Path", "UserName", "UserId", "Arn", "CreateDate"}
    assert user["Arn"] == "arn:aws:iam::000000000000:user/alice"
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", user["UserId"])
    _iso(user["CreateDate"])
    assert cli("create-user", "--user-name", "bob", "--account", "111122223333").code == 0
    assert cli("list-users").json() == {"Users": [user]}
    listed = cli("list-users", "--account", "111122223333").json()["Users"]
    assert [u["Arn"] for u in listed] == ["arn:aws:iam::111122223333:user/bob"]
    assert cli("get-user", "--user-name", "alice").json() == {"User": user}


def test_create_access_key_prints_exactly_aws_iams_json(cli, tmp_path):
    cli("create-user", "--user-name", "alice")
    result = cli("create-access-key", "--user-name", "alice")
    assert result.code == 0, result.err
    body = result.json()
    assert list(body) == ["AccessKey"]
    key = body["AccessKey"]
    assert list(key) == ["UserName", "AccessKeyId", "Status", "SecretAccessKey", "CreateDate"]
    assert key["UserName"] == "alice" and key["Status"] == "Active"
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", key["AccessKeyId"])
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", key["SecretAccessKey"])
    _iso(key["CreateDate"])

    config = load_config(environ={}, overrides={"data_dir": str(cli.data)})
    store = Identities.from_config(config)
    try:
        user, secret = asyncio.run(store.lookup_access_key(key["AccessKeyId"]))
    finally:
        store.close()
    assert (user.name, secret) == ("alice", key["SecretAccessKey"])

    listed = cli("list-access-keys", "--user-name", "alice").json()["AccessKeyMetadata"]
    assert listed == [{k: v for k, v in key.items() if k != "SecretAccessKey"}]


def test_key_limit_missing_user_and_deleting_keys(cli):
    cli("create-user", "--user-name", "alice")
    first = cli("create-access-key", "--user-name", "alice").json()["AccessKey"]["AccessKeyId"]
    cli("create-access-key", "--user-name", "alice")
    third = cli("create-access-key", "--user-name", "alice")
    assert third.code == 1 and third.out == ""
    assert third.err.strip() == ("berth iam: An error occurred (LimitExceeded) when calling the "
                                 "CreateAccessKey operation: Cannot exceed quota for "
                                 "AccessKeysPerUser: 2")
    ghost = cli("create-access-key", "--user-name", "ghost")
    assert ghost.code == 1 and "(NoSuchEntity)" in ghost.err and "ghost" in ghost.err

    deactivated = cli("update-access-key", "--user-name", "alice", "--access-key-id", first,
                      "--status", "Inactive")
    assert deactivated.code == 0 and deactivated.out == ""
    deleted = cli("delete-access-key", "--user-name", "alice", "--access-key-id", first)
    assert deleted.code == 0 and deleted.out == ""
    again = cli("delete-access-key", "--user-name", "alice", "--access-key-id", first)
    assert again.code == 1 and f"The Access Key with id {first} cannot be found." in again.err
    assert len(cli("list-access-keys", "--user-name", "alice").json()["AccessKeyMetadata"]) == 1


def test_policies_from_a_file_or_inline_like_the_aws_cli(cli, tmp_path):
    cli("create-user", "--user-name", "alice")
    policy_file = tmp_path / "pull.json"
    policy_file.write_text(PULL_POLICY)
    put = cli("put-user-policy", "--user-name", "alice", "--policy-name", "pull",
              "--policy-document", f"file://{policy_file}")
    assert put.code == 0 and put.out == "", put.err
    inline = cli("put-user-policy", "--user-name", "alice", "--policy-name", "push",
                 "--policy-document", PUSH_POLICY)
    assert inline.code == 0, inline.err
    got = cli("get-user-policy", "--user-name", "alice", "--policy-name", "pull").json()
    assert got == {"UserName": "alice", "PolicyName": "pull",
                   "PolicyDocument": json.loads(PULL_POLICY)}
    assert cli("list-user-policies", "--user-name", "alice").json() == {
        "PolicyNames": ["pull", "push"]}
    assert cli("delete-user-policy", "--user-name", "alice", "--policy-name", "push").code == 0
    missing = cli("get-user-policy", "--user-name", "alice", "--policy-name", "push")
    assert missing.code == 1 and "(NoSuchEntity)" in missing.err


def test_an_invalid_policy_prints_every_problem_and_keeps_the_previous(cli, tmp_path):
    cli("create-user", "--user-name", "alice")
    cli("put-user-policy", "--user-name", "alice", "--policy-name", "p",
        "--policy-document", PULL_POLICY)
    broken = tmp_path / "broken.json"
    broken.write_text(BROKEN_POLICY)
    result = cli("put-user-policy", "--user-name", "alice", "--policy-name", "p",
                 "--policy-document", f"file://{broken}")
    assert result.code == 1 and result.out == ""
    lines = result.err.splitlines()
    assert lines[0] == ("berth iam: An error occurred (MalformedPolicyDocument) when calling "
                        "the PutUserPolicy operation: the policy document has 2 problem(s):")
    assert lines[1].startswith("  Statement[0].Effect: invalid Effect 'Alow'")
    assert lines[2] == "  Statement[1].Condition.StringEqualz: unsupported condition operator"
    got = cli("get-user-policy", "--user-name", "alice", "--policy-name", "p").json()
    assert got["PolicyDocument"] == json.loads(PULL_POLICY)


def test_usage_errors_exit_1_with_a_clear_message(cli, tmp_path):
    cli("create-user", "--user-name", "alice")
    unreadable = cli("put-user-policy", "--user-name", "alice", "--policy-name", "p",
                     "--policy-document", f"file://{tmp_path}/absent.json")
    assert unreadable.code == 1
    assert f"cannot read policy document {tmp_path}/absent.json" in unreadable.err
    bad_name = cli("create-user", "--user-name", "has space")
    assert bad_name.code == 1 and "(ValidationError)" in bad_name.err
    no_data = cli("list-users", "--data", str(tmp_path / "nowhere"), data=False)
    assert no_data.code == 1 and "does not exist" in no_data.err
    assert not (tmp_path / "nowhere").exists()


def test_an_exposed_master_key_is_refused(cli):
    cli("create-user", "--user-name", "alice")
    (cli.data / "master.key").chmod(0o644)
    result = cli("list-users")
    assert result.code == 1 and "master key is accessible to group or others" in result.err


def test_config_file_names_the_data_dir(cli, tmp_path):
    config = tmp_path / "berth.toml"
    config.write_text(f'data_dir = "{cli.data}"\ndefault_account = "123456789012"\n')
    created = cli("create-user", "--user-name", "carol", "--config", str(config), data=False)
    assert created.json()["User"]["Arn"] == "arn:aws:iam::123456789012:user/carol"
    store = Identities.from_config(load_config(config, environ={}))
    try:
        assert [u.name for u in store.list_users()] == ["carol"]
    finally:
        store.close()
    broken = tmp_path / "broken.toml"
    broken.write_text('nonsense = 1\n')
    result = cli("list-users", "--config", str(broken), data=False)
    assert result.code == 2 and "nonsense: unknown key" in result.err


def test_a_config_naming_postgresql_manages_that_database(cli, tmp_path, postgres):
    """Identities live where the config's [metadata] url says, not in a SQLite file of the
    data dir; the data dir's master key seals and opens the secrets."""
    url = postgres.create_database("iamcli")
    config = tmp_path / "berth.toml"
    config.write_text(f'data_dir = "{cli.data}"\n[metadata]\nurl = "{url}"\n'
                      'upgrade = "auto"\n')
    created = cli("create-user", "--user-name", "dana", "--config", str(config), data=False)
    assert created.code == 0, created.err
    key = cli("create-access-key", "--user-name", "dana", "--config", str(config),
              data=False).json()["AccessKey"]
    assert not (cli.data / "metadata.db").exists()
    store = Identities.from_config(load_config(config, environ={}))
    try:
        assert [u.name for u in store.list_users()] == ["dana"]
        user, secret = asyncio.run(store.lookup_access_key(key["AccessKeyId"]))
        assert (user.name, secret) == ("dana", key["SecretAccessKey"])
    finally:
        store.close()


def test_the_secret_appears_once_only_in_create_access_keys_stdout(any_cli, tmp_path):
    cli = any_cli
    cli("create-user", "--user-name", "alice")
    key = cli("create-access-key", "--user-name", "alice").json()["AccessKey"]
    secret, key_id = key["SecretAccessKey"], key["AccessKeyId"]
    policy_file = tmp_path / "p.json"
    policy_file.write_text(PULL_POLICY)
    for argv in (["list-users"], ["get-user", "--user-name", "alice"],
                 ["list-access-keys", "--user-name", "alice"],
                 ["create-access-key", "--user-name", "alice"],
                 ["create-access-key", "--user-name", "alice"],  # LimitExceeded
                 ["put-user-policy", "--user-name", "alice", "--policy-name", "p",
                  "--policy-document", f"file://{policy_file}"],
                 ["update-access-key", "--user-name", "alice", "--access-key-id", key_id,
                  "--status", "Inactive"],
                 ["delete-access-key", "--user-name", "alice", "--access-key-id", key_id],
                 ["delete-user", "--user-name", "alice"]):
        cli(*argv)
    holders = [(command, stream) for command, stream, text in cli.transcript if secret in text]
    assert holders == [("create-access-key", "stdout")]
    second = [json.loads(text)["AccessKey"]["SecretAccessKey"]
              for command, stream, text in cli.transcript
              if command == "create-access-key" and stream == "stdout" and text][1]
    assert all(second not in text for command, stream, text in cli.transcript
               if stream != "stdout")
    # The logs did record the operations (so the check above looked at real log output).
    if cli.in_process:
        logs = "\n".join(text for _, stream, text in cli.transcript if stream == "logs")
        assert key_id in logs and "access key created" in logs


def test_the_command_in_a_real_process_keeps_stderr_free_of_secrets(cli):
    """Whatever entry point exists: `python3 -m registry` once hooked, the module until then."""
    module = "registry" if HOOKED else "registry.auth.iam_cli"

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, "iam", *argv, "--data",
                               str(cli.data)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)

    assert run("create-user", "--user-name", "alice").returncode == 0
    created = run("create-access-key", "--user-name", "alice")
    assert created.returncode == 0 and created.stderr == ""
    secret = json.loads(created.stdout)["AccessKey"]["SecretAccessKey"]
    for argv in (("list-access-keys", "--user-name", "alice"), ("list-users",),
                 ("delete-user", "--user-name", "alice")):
        proc = run(*argv)
        assert secret not in proc.stdout and secret not in proc.stderr


def test_changes_reach_a_running_server_within_the_cache_ttl(cli):
    """The server keeps its store open; the CLI writes to the same file meanwhile."""
    from registry.auth.credential_cache import CredentialCache
    from tests.identities.conftest import Clock

    config = load_config(environ={}, overrides={"data_dir": str(cli.data)})
    server = Identities.from_config(config)
    clock = Clock()
    cache = CredentialCache(server, ttl=5.0, clock=clock)
    try:
        cli("create-user", "--user-name", "alice")
        key = cli("create-access-key", "--user-name", "alice").json()["AccessKey"]
        assert asyncio.run(cache.lookup(key["AccessKeyId"]))[1] == key["SecretAccessKey"]
        cli("delete-access-key", "--user-name", "alice", "--access-key-id", key["AccessKeyId"])
        assert asyncio.run(cache.lookup(key["AccessKeyId"])) is not None  # cached, within ttl
        clock.advance(5.0)
        assert asyncio.run(cache.lookup(key["AccessKeyId"])) is None
    finally:
        server.close()
