"""The `policy` CLI, run as a separate process (`python -m policies …`) the way users run it,
plus the `register(subparsers)` hook the `berth` command uses."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from policies.cli import register

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
REPO = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/app"

PULL = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Pull", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*"},
    {"Sid": "OwnNamespace", "Effect": "Allow", "Action": "ecr:PutImage", "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/${{aws:username}}/*"},
    {"Sid": "TagOnlyTeam", "Effect": "Allow", "Action": "ecr:TagResource", "Resource": "*",
     "Condition": {"Null": {"aws:TagKeys": "false"}, "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}},
]}
DENY_HTTP = {"Version": "2012-10-17", "Statement": [
    {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "ecr:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
CROSS = {"Version": "2008-10-17", "Statement": [
    {"Sid": "PartnerPull", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::210987654321:root"}, "Action": "ecr:BatchGetImage"}]}
BAD = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
    {"Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {"StringEqualz": {"aws:username": "x"}}}]}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "policies", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, doc in {"pull.json": PULL, "deny-http.json": DENY_HTTP, "cross.json": CROSS, "bad.json": BAD}.items():
        path = tmp_path / name
        path.write_text(json.dumps(doc, indent=2))
        out[name] = str(path)
    (tmp_path / "broken.json").write_text("{not json")
    out["broken.json"] = str(tmp_path / "broken.json")
    return out


def test_validate_valid_files_exit_0(files: dict[str, str]) -> None:
    result = run("policy", "validate", files["pull.json"], files["deny-http.json"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{files['pull.json']}: valid identity policy",
        f"{files['deny-http.json']}: valid resource policy",
    ]


def test_validate_prints_each_problem_with_its_path_and_exits_1(files: dict[str, str]) -> None:
    result = run("policy", "validate", files["pull.json"], files["bad.json"], files["broken.json"])
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{files['pull.json']}: valid identity policy",
        f"{files['bad.json']}: Statement[1].Condition.StringEqualz: unsupported condition operator",
        f"{files['broken.json']}: Syntax errors in policy. Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ]


def test_validate_with_an_explicit_kind(files: dict[str, str]) -> None:
    result = run("policy", "validate", "--kind", "resource", files["pull.json"])
    assert result.returncode == 1
    assert f"{files['pull.json']}: Statement[0]: Missing required field Principal" in result.stdout.splitlines()


def test_validate_unreadable_file_exits_1(tmp_path: Path) -> None:
    result = run("policy", "validate", str(tmp_path / "missing.json"))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{tmp_path / 'missing.json'}: cannot read:")


def test_simulate_allowed_explains_the_deciding_statement(files: dict[str, str]) -> None:
    result = run("policy", "simulate", "--principal", USER, "--action", "ecr:BatchGetImage", "--resource", REPO, "--policy", files["pull.json"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "decision: allowed",
        "reason: allowed by an identity-based policy",
        "matched statements:",
        f"  identity policy {files['pull.json']!r} Statement[0] (Sid 'Pull'): Allow",
    ]


def test_simulate_denied_prints_the_aws_message_and_exits_1(files: dict[str, str]) -> None:
    result = run("policy", "simulate", "--principal", USER, "--action", "ecr:CreateRepository", "--resource", REPO, "--policy", files["pull.json"])
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "decision: implicitDeny",
        "reason: no identity-based policy allows",
        f"message: User: {USER} is not authorized to perform: ecr:CreateRepository on resource: {REPO} "
        "because no identity-based policy allows the ecr:CreateRepository action",
        "matched statements: none",
    ]


def test_simulate_json(files: dict[str, str]) -> None:
    result = run("policy", "simulate", "--principal", USER, "--action", "ecr:BatchGetImage", "--resource", REPO,
                 "--policy", files["pull.json"], "--resource-policy", files["deny-http.json"], "--context", "aws:SecureTransport=false", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "decision": "explicitDeny",
        "matchedStatements": [{"policy": files["deny-http.json"], "policyType": "resource", "index": 0, "sid": "TlsOnly", "effect": "Deny"}],
        "errors": [],
    }


def test_simulate_derives_principal_keys_from_the_arn(files: dict[str, str]) -> None:
    own = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/alice/tool"
    other = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/bob/tool"
    base = ["policy", "simulate", "--principal", USER, "--action", "ecr:PutImage", "--policy", files["pull.json"], "--json"]
    assert json.loads(run(*base, "--resource", own).stdout)["decision"] == "allowed"
    assert json.loads(run(*base, "--resource", other).stdout)["decision"] == "implicitDeny"


@pytest.mark.parametrize(("tag_keys", "expected"), [(["team"], "allowed"), (["team", "env"], "allowed"), (["team", "owner"], "implicitDeny"), ([], "implicitDeny")])
def test_simulate_repeated_context_key_gives_several_values(files: dict[str, str], tag_keys: list[str], expected: str) -> None:
    context = [arg for key in tag_keys for arg in ("--context", f"aws:TagKeys={key}")]
    result = run("policy", "simulate", "--principal", USER, "--action", "ecr:TagResource", "--resource", REPO, "--policy", files["pull.json"], *context, "--json")
    assert json.loads(result.stdout)["decision"] == expected


def test_simulate_cross_account_needs_the_resource_policy(files: dict[str, str]) -> None:
    partner = "arn:aws:iam::210987654321:user/partner"
    base = ["policy", "simulate", "--principal", partner, "--action", "ecr:BatchGetImage", "--resource", REPO, "--policy", files["pull.json"]]
    denied = run(*base)
    assert denied.returncode == 1
    assert "because no resource-based policy allows the ecr:BatchGetImage action" in denied.stdout
    allowed = run(*base, "--resource-policy", files["cross.json"])
    assert allowed.returncode == 0
    assert allowed.stdout.splitlines()[0] == "decision: allowed"


def test_simulate_rejects_unusable_input_with_exit_2(files: dict[str, str]) -> None:
    base = ["policy", "simulate", "--action", "ecr:BatchGetImage", "--resource", REPO]
    bad_policy = run(*base, "--principal", USER, "--policy", files["bad.json"])
    assert bad_policy.returncode == 2
    assert bad_policy.stderr.splitlines() == [f"{files['bad.json']}: Statement[1].Condition.StringEqualz: unsupported condition operator"]
    bad_principal = run(*base, "--principal", "alice")
    assert bad_principal.returncode == 2
    assert bad_principal.stderr.startswith("--principal: not a principal ARN")
    bad_context = run(*base, "--principal", USER, "--context", "aws:SourceIp")
    assert bad_context.returncode == 2
    assert bad_context.stderr.strip() == "--context: expected KEY=VALUE, got 'aws:SourceIp'"


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("policy").returncode == 2
    assert run("policy", "validate").returncode == 2


def test_module_cli_entry_point(files: dict[str, str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "policies.cli", "policy", "validate", files["pull.json"]],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip().endswith("valid identity policy")


def test_register_hooks_into_a_host_cli(files: dict[str, str]) -> None:
    """The `berth` CLI builds its own parser, calls register() and runs args.func(args)."""
    parser = argparse.ArgumentParser(prog="berth")
    subparsers = parser.add_subparsers(dest="command", required=True)
    subparsers.add_parser("serve")
    register(subparsers)
    args: Any = parser.parse_args(["policy", "validate", files["bad.json"]])
    out = io.StringIO()
    assert args.func(args, out=out) == 1
    assert out.getvalue() == f"{files['bad.json']}: Statement[1].Condition.StringEqualz: unsupported condition operator\n"
    args = parser.parse_args(["policy", "simulate", "--principal", USER, "--action", "ecr:BatchGetImage", "--resource", REPO, "--policy", files["pull.json"]])
    assert args.func(args, out=io.StringIO()) == 0
