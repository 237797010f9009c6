"""`berth policy simulate --config/--data` over a data directory, in process: policy_dir files,
broken files skipped as the server skips them, auth off, and questions it cannot answer.

(The comparison with a live server's decisions is tests/ecr/test_policy_simulate_live.py.)
"""

from __future__ import annotations

import json

import pytest

from registry.auth.bootstrap import bootstrap
from registry.auth.identities import Identities
from registry.cli import main
from registry.config import load_config
from tests.identities.conftest import ACCOUNT, BROKEN_POLICY, PUSH_POLICY

REPO = "arn:aws:ecr:us-east-1:000000000000:repository/app/web"


@pytest.fixture
def deployment(tmp_path):
    """A data dir as a first server start leaves it, a user `ci` with no stored policy, and a
    config whose policy_dir gives `ci` a push policy."""
    data, policy_dir = tmp_path / "data", tmp_path / "policies"
    (policy_dir / ACCOUNT / "ci").mkdir(parents=True)
    (policy_dir / ACCOUNT / "ci" / "push.json").write_text(PUSH_POLICY)
    config_file = tmp_path / "berth.toml"
    config_file.write_text(f'data_dir = "{data}"\n[auth]\npolicy_dir = "{policy_dir}"\n')
    config = load_config(config_file, environ={})
    bootstrap(config)
    store = Identities.from_config(config)
    store.create_user(ACCOUNT, "ci")
    store.close()
    return config_file, data, policy_dir


def simulate(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["policy", "simulate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_policy_dir_files_decide_as_in_the_server(deployment, capsys):
    config_file, _, _ = deployment
    code, out, _ = simulate(capsys, "--config", str(config_file), "--principal",
                            f"arn:aws:iam::{ACCOUNT}:user/ci", "--action", "ecr:PutImage",
                            "--resource", REPO)
    assert code == 0
    assert out.splitlines()[:2] == ["decision: allowed",
                                    "reason: allowed by an identity-based policy"]
    assert "identity policy 'push' Statement[0]: Allow" in out
    # --data alone knows the stored policies but not the config's policy_dir.
    code, out, _ = simulate(capsys, "--data", str(deployment[1]), "--principal",
                            f"arn:aws:iam::{ACCOUNT}:user/ci", "--action", "ecr:PutImage",
                            "--resource", REPO)
    assert code == 1 and "decision: implicitDeny" in out


def test_a_broken_policy_file_is_reported_and_skipped(deployment, capsys):
    config_file, _, policy_dir = deployment
    (policy_dir / ACCOUNT / "ci" / "broken.json").write_text(BROKEN_POLICY)
    code, out, err = simulate(capsys, "--config", str(config_file), "--principal",
                              f"arn:aws:iam::{ACCOUNT}:user/ci", "--action", "ecr:PutImage",
                              "--resource", REPO, "--json")
    # A fresh process has no previous valid set to keep: the user's files give nothing.
    assert code == 1 and json.loads(out)["decision"] == "implicitDeny"
    assert "warning: skipped as the server does: " in err and "broken.json" in err


def test_the_admin_of_a_bootstrapped_data_dir(deployment, capsys):
    _, data, _ = deployment
    code, out, _ = simulate(capsys, "--data", str(data), "--principal",
                            f"arn:aws:iam::{ACCOUNT}:user/admin", "--action",
                            "ecr:PutImage", "--resource", REPO, "--json")
    decision = json.loads(out)
    assert code == 0 and decision["decision"] == "allowed"
    assert decision["matchedStatements"] == [{"policy": "AdministratorAccess",
                                              "policyType": "identity", "index": 0,
                                              "sid": None, "effect": "Allow"}]


def test_anonymous_is_denied_like_an_unauthenticated_request(deployment, capsys):
    _, data, _ = deployment
    code, out, _ = simulate(capsys, "--data", str(data), "--principal", "anonymous",
                            "--action", "ecr:BatchGetImage", "--resource", REPO)
    assert code == 1 and "decision: implicitDeny" in out


def test_authorization_off_allows_everything(deployment, capsys, tmp_path):
    _, data, _ = deployment
    config_file = tmp_path / "open.toml"
    config_file.write_text(f'data_dir = "{data}"\n[auth]\nenabled = false\n')
    code, out, _ = simulate(capsys, "--config", str(config_file), "--principal",
                            f"arn:aws:iam::{ACCOUNT}:user/nobody", "--action", "ecr:PutImage",
                            "--resource", REPO)
    assert code == 0
    assert out.splitlines() == ["decision: allowed", "reason: authorization is off ([auth] "
                                "enabled = false): the server allows every request"]


def test_a_directory_without_a_registry_is_unusable_and_left_alone(tmp_path, capsys):
    empty = tmp_path / "nothing"
    code, out, err = simulate(capsys, "--data", str(empty), "--principal",
                              f"arn:aws:iam::{ACCOUNT}:user/admin", "--action",
                              "ecr:PutImage", "--resource", REPO)
    assert code == 2 and out == ""
    assert "holds no registry" in err
    assert not empty.exists()


def test_bad_context_and_policy_files_are_unusable(deployment, capsys, tmp_path):
    _, data, _ = deployment
    code, _, err = simulate(capsys, "--data", str(data), "--principal",
                            f"arn:aws:iam::{ACCOUNT}:user/admin", "--action", "ecr:PutImage",
                            "--resource", REPO, "--context", "no-equals-sign")
    assert code == 2 and "expected KEY=VALUE" in err
    code, _, err = simulate(capsys, "--data", str(data), "--principal",
                            f"arn:aws:iam::{ACCOUNT}:user/admin", "--action", "ecr:PutImage",
                            "--resource", REPO, "--policy", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err


def test_context_keys_replace_the_computed_ones(deployment, capsys, tmp_path):
    _, data, _ = deployment
    tls_only = tmp_path / "tls.json"
    tls_only.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "ecr:*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    common = ["--data", str(data), "--principal", f"arn:aws:iam::{ACCOUNT}:user/admin",
              "--action", "ecr:PutImage", "--resource", REPO, "--resource-policy",
              str(tls_only)]
    code, out, _ = simulate(capsys, *common)  # plain HTTP, as the server sees it by default
    assert code == 1 and "Sid 'TlsOnly'" in out
    code, out, _ = simulate(capsys, *common, "--context", "aws:SecureTransport=true")
    assert code == 0
