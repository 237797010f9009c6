"""PolicyDirectory: <dir>/<account>/<user>/<policy>.json, reloaded on change; an invalid file
keeps that user's previous valid set in force."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from aiohttp import web

from registry.app import _policy_reloader, _reload_policy_files
from registry.auth.policy_files import PolicyDirectory
from tests.identities.conftest import ACCOUNT, BROKEN_POLICY, OTHER_ACCOUNT, PULL_POLICY, PUSH_POLICY


def write(root, account, user, name, text):
    path = root / account / user / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "policies"
    path.mkdir()
    return path


def test_loads_every_user_policy_by_layout(root):
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    write(root, ACCOUNT, "alice", "push", PUSH_POLICY)
    write(root, OTHER_ACCOUNT, "bob", "pull", PULL_POLICY)
    directory = PolicyDirectory(root)
    assert directory.reload() == []
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY), ("push", PUSH_POLICY)]
    assert directory.policies_for(OTHER_ACCOUNT, "bob") == [("pull", PULL_POLICY)]
    assert directory.policies_for(ACCOUNT, "bob") == []
    assert directory.problems == []


def test_valid_then_invalid_keeps_previous_then_fixed_is_picked_up(root, caplog):
    path = write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    directory = PolicyDirectory(root)
    directory.reload()

    path.write_text(BROKEN_POLICY)
    with caplog.at_level(logging.WARNING, logger="registry.auth.policy_files"):
        problems = directory.reload()
    assert problems == [
        f"{path}: Statement[0].Effect: invalid Effect 'Alow'; must be \"Allow\" or \"Deny\" "
        "(case-sensitive)",
        f"{path}: Statement[1].Condition.StringEqualz: unsupported condition operator",
    ]
    assert directory.problems == problems
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]
    kept = [r for r in caplog.records if r.getMessage() == "invalid policy files, previous policies kept"]
    assert [(r.account, r.user_name, r.kept) for r in kept] == [(ACCOUNT, "alice", ["pull"])]

    path.write_text(PUSH_POLICY)
    assert directory.reload() == []
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PUSH_POLICY)]
    assert directory.problems == []


def test_one_invalid_file_keeps_the_users_whole_previous_set(root):
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    directory = PolicyDirectory(root)
    directory.reload()
    write(root, ACCOUNT, "alice", "push", PUSH_POLICY)   # a valid addition...
    write(root, ACCOUNT, "alice", "typo", "{")          # ...with an invalid one beside it
    assert directory.reload()
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]


def test_other_users_are_updated_when_one_user_is_broken(root):
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    bob = write(root, ACCOUNT, "bob", "pull", PULL_POLICY)
    directory = PolicyDirectory(root)
    directory.reload()
    write(root, ACCOUNT, "alice", "pull", "not json")
    bob.write_text(PUSH_POLICY)
    assert len(directory.reload()) == 1
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]
    assert directory.policies_for(ACCOUNT, "bob") == [("pull", PUSH_POLICY)]


def test_a_new_user_with_only_invalid_files_gets_nothing(root):
    write(root, ACCOUNT, "alice", "pull", BROKEN_POLICY)
    directory = PolicyDirectory(root)
    assert len(directory.reload()) == 2
    assert directory.policies_for(ACCOUNT, "alice") == []


def test_nothing_is_reread_until_something_changes(root):
    path = write(root, ACCOUNT, "alice", "pull", BROKEN_POLICY)
    directory = PolicyDirectory(root)
    assert len(directory.reload()) == 2
    assert directory.reload() == []           # unchanged: not re-read, not re-reported
    assert len(directory.problems) == 2      # but still outstanding
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert len(directory.reload()) == 2       # an mtime change alone triggers a re-read


def test_a_same_size_rewrite_is_detected(root):
    first = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:PutImage",
         "Resource": "arn:aws:ecr:us-east-1:000000000000:repository/aaa"}]})
    second = first.replace("aaa", "bbb")
    assert len(first) == len(second)
    path = write(root, ACCOUNT, "alice", "p", first)
    directory = PolicyDirectory(root)
    directory.reload()
    path.write_text(second)
    directory.reload()
    assert directory.policies_for(ACCOUNT, "alice") == [("p", second)]


def test_an_atomically_replaced_file_is_detected(root, tmp_path):
    path = write(root, ACCOUNT, "alice", "p", PULL_POLICY)
    directory = PolicyDirectory(root)
    directory.reload()
    staged = tmp_path / "staged.json"
    staged.write_text(PUSH_POLICY)
    os.replace(staged, path)
    directory.reload()
    assert directory.policies_for(ACCOUNT, "alice") == [("p", PUSH_POLICY)]


def test_deleting_files_and_users_removes_their_policies(root):
    pull = write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    write(root, ACCOUNT, "alice", "push", PUSH_POLICY)
    bob = write(root, ACCOUNT, "bob", "pull", PULL_POLICY)
    directory = PolicyDirectory(root)
    directory.reload()
    pull.unlink()
    bob.unlink()
    bob.parent.rmdir()
    directory.reload()
    assert directory.policies_for(ACCOUNT, "alice") == [("push", PUSH_POLICY)]
    assert directory.policies_for(ACCOUNT, "bob") == []


def test_layout_problems_are_reported_but_do_not_block_valid_policies(root):
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    (root / "not-an-account").mkdir()
    (root / "README.md").write_text("hi")
    (root / ACCOUNT / "stray.json").write_text(PULL_POLICY)
    (root / ACCOUNT / "alice" / "notes.txt").write_text("x")
    (root / ACCOUNT / "alice" / "bad name.json").write_text(PULL_POLICY)
    directory = PolicyDirectory(root)
    problems = directory.reload()
    assert sorted(p.split(": ")[0] for p in problems) == sorted(str(p) for p in [
        root / "README.md", root / "not-an-account", root / ACCOUNT / "stray.json",
        root / ACCOUNT / "alice" / "notes.txt", root / ACCOUNT / "alice" / "bad name.json"])
    assert all(": ignored: " in p for p in problems)
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]


def test_hidden_files_and_editor_backups_are_skipped_silently(root):
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    (root / ACCOUNT / "alice" / ".pull.json.swp").write_text("{")
    (root / ACCOUNT / "alice" / "pull.json~").write_text("{")
    (root / ".git").mkdir()
    directory = PolicyDirectory(root)
    assert directory.reload() == []
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]


@pytest.mark.parametrize("content, problem", [
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b" " * (64 * 1024 + 1), "larger than 65536 bytes"),
    (b'{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", '
     b'"Resource": "*", "Principal": "*"}]}', "Statement[0].Principal"),
])
def test_unreadable_or_non_identity_files_keep_the_previous_set(root, content, problem):
    path = write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    directory = PolicyDirectory(root)
    directory.reload()
    path.write_bytes(content)
    problems = directory.reload()
    assert len(problems) == 1 and problems[0].startswith(f"{path}: ")
    assert problem in problems[0]
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]


def test_a_missing_directory_is_reported_once_and_means_no_policies(tmp_path):
    directory = PolicyDirectory(tmp_path / "absent")
    assert directory.reload() == [f"{tmp_path / 'absent'}: policy directory does not exist"]
    assert directory.reload() == []
    assert directory.policies_for(ACCOUNT, "alice") == []
    write(tmp_path / "absent", ACCOUNT, "alice", "pull", PULL_POLICY)
    assert directory.reload() == []
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]


HOSTILE_FILES = [  # content, a word of the problem reported (files stay under 64 KiB)
    (b"[" * 30_000 + b"]" * 30_000, "nested deeper than 32"),   # RecursionError in json.loads
    (b'{"Version": "2012-10-17", "Statement": [' * 1_500, "nested deeper than 32"),
    (b'{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", '
     b'"Resource": "*", "Condition": {"NumericLessThan": {"aws:EpochTime": '
     + b"9" * 5000 + b"}}}}", "longer than 4300 digits"),
    (b'{"Version": "2012-10-17", "Statement": {"Sid": "\\ud800", "Effect": "Allow", '
     b'"Action": "ecr:*", "Resource": "*"}}', "lone UTF-16 surrogate"),
    (b'{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", '
     b'"Resource": "\\udfff"}}', "lone UTF-16 surrogate"),
    (b"\xef\xbb\xbf" + PULL_POLICY.encode(), "byte order mark"),
    (PULL_POLICY.encode("utf-16"), "not UTF-8"),
    (PULL_POLICY.encode("utf-16-le"), "Syntax errors in policy"),
    (bytes(range(256)) * 4, "not UTF-8"),
    (b"\x00" * 100, "Syntax errors in policy"),
    (b'{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", '
     b'"Resource": NaN}}', "NaN is not valid JSON"),
    (b'{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", '
     b'"Resource": "arn:aws:ecr:us-east-1:000000000000:repository/app\\n"}}',
     "must be in ARN format"),
]


@pytest.mark.parametrize("content, problem", HOSTILE_FILES,
                         ids=[f"{i}-{p}" for i, (_, p) in enumerate(HOSTILE_FILES)])
def test_hostile_files_are_reported_and_skipped(root, content, problem):
    path = write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    write(root, ACCOUNT, "bob", "pull", PULL_POLICY)
    directory = PolicyDirectory(root)
    directory.reload()
    path.write_bytes(content)
    problems = directory.reload()
    assert problems and all(p.startswith(f"{path}: ") for p in problems)
    assert any(problem in p for p in problems), problems
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]
    assert directory.policies_for(ACCOUNT, "bob") == [("pull", PULL_POLICY)]
    path.write_text(PUSH_POLICY)                 # fixed: picked up at the next reload
    assert directory.reload() == []
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PUSH_POLICY)]


def test_a_directory_or_fifo_named_like_a_policy_is_reported_and_skipped(root):
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    (root / ACCOUNT / "alice" / "dir.json").mkdir()
    os.mkfifo(root / ACCOUNT / "alice" / "fifo.json")
    directory = PolicyDirectory(root)
    problems = directory.reload()   # returns: a FIFO is never opened for a blocking read
    assert sorted(p.split(": ")[0] for p in problems) == sorted(
        str(root / ACCOUNT / "alice" / name) for name in ("dir.json", "fifo.json"))
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]


def test_an_unreadable_file_is_reported_and_skipped(root):
    """Read by a process without the capability to bypass file modes (root has it)."""
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    secret = write(root, ACCOUNT, "alice", "secret", PUSH_POLICY)
    secret.chmod(0)
    script = ("import json, sys\n"
              "from registry.auth.policy_files import PolicyDirectory\n"
              "d = PolicyDirectory(sys.argv[1])\n"
              "print(json.dumps([d.reload(), d.policies_for(sys.argv[2], 'alice')]))\n")
    command = [sys.executable, "-c", script, str(root), ACCOUNT]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2], check=True)
    problems, policies = json.loads(result.stdout)
    assert problems == [f"{secret}: cannot read: Permission denied"]
    assert policies == []   # a new user with one unreadable file gets nothing


class FailingPolicyDirectory(PolicyDirectory):
    """Raises from ``reload()`` the first ``failures`` times (a bug, a vanished mount...)."""

    def __init__(self, path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures
        self.calls = 0
        self.recovered = threading.Event()

    def reload(self) -> list[str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("reload failed")
        problems = super().reload()
        self.recovered.set()
        return problems


async def test_the_reload_loop_survives_exceptions_and_picks_up_the_next_change(root, caplog):
    directory = FailingPolicyDirectory(root, failures=3)
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    reloader = _policy_reloader(directory, 0.001)(web.Application())
    with caplog.at_level(logging.ERROR, logger="registry.app"):
        await reloader.__anext__()
        try:
            recovered = await asyncio.get_running_loop().run_in_executor(
                None, directory.recovered.wait, 30)
        finally:
            await reloader.aclose()
    assert recovered and directory.calls > 3
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]
    failures = [r for r in caplog.records if r.getMessage() == "policy directory reload failed"]
    assert len(failures) == 3


def test_a_server_starts_when_the_first_reload_raises(tmp_path):
    """The startup reload is guarded too: the app is built, the problem is logged."""
    directory = FailingPolicyDirectory(tmp_path, failures=1)
    _reload_policy_files(directory)          # does not raise
    assert directory.calls == 1
    _reload_policy_files(directory)
    assert directory.recovered.is_set()


def test_names_that_are_not_utf8_are_reported_and_skipped(root, caplog):
    write(root, ACCOUNT, "alice", "pull", PULL_POLICY)
    alice = os.fsencode(root / ACCOUNT / "alice")
    with open(alice + b"/\xff\xfe.json", "wb") as handle:
        handle.write(PULL_POLICY.encode())
    os.mkdir(os.fsencode(root / ACCOUNT) + b"/bob\xff")
    directory = PolicyDirectory(root)
    with caplog.at_level(logging.INFO, logger="registry.auth.policy_files"):
        problems = directory.reload()
    assert len(problems) == 2 and all(": ignored: " in p for p in problems)
    assert directory.policies_for(ACCOUNT, "alice") == [("pull", PULL_POLICY)]
    for record in caplog.records:  # what the server logs can be written as UTF-8 JSON
        json.dumps(record.__dict__, default=str).encode("utf-8")
