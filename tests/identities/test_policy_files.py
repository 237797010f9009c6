"""PolicyDirectory: <dir>/<account>/<user>/<policy>.json, reloaded on change; an invalid file
keeps that user's previous valid set in force."""

from __future__ import annotations

import json
import logging
import os

import pytest

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
