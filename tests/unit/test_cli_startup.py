"""`berth --help` and `berth policy simulate` start without the server's heavy dependencies.

Each case runs the real `berth` entry point in a fresh interpreter and lists the modules it
imported; no timing is asserted (the machine is noisy), only what must not be loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOW_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}'

# What the server and the other commands need, and a listing of commands must not pay for.
SERVER_STACK = ("aiohttp", "cryptography", "botocore", "boto3", "sqlite3", "asyncio",
                "multidict", "yarl", "prometheus_client", "sqlalchemy")
PROBE = """
import json, runpy, sys
sys.argv = ["berth", *json.loads(sys.argv[1])]
try:
    runpy.run_module("registry", run_name="__main__")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["code"], {m.split(".")[0] for m in report["modules"]} | set(report["modules"])


def heavy(modules: set[str], forbidden) -> list[str]:
    return sorted(m for m in forbidden if m in modules)


def test_help_lists_every_command_and_imports_none_of_them():
    code, modules = imported_by("--help")
    assert code == 0
    assert heavy(modules, SERVER_STACK) == []
    # The commands' own modules are not imported to list them.
    assert heavy(modules, ("policies", "scanner", "registry.auth.iam_cli", "registry.app",
                           "registry.serve")) == []


@pytest.mark.parametrize("argv", [
    ("policy", "simulate", "--help"),
    ("policy", "simulate", "--principal", "arn:aws:iam::000000000000:user/ci",
     "--action", "ecr:PutImage", "--resource", "*", "--policy", "{policy}"),
])
def test_offline_simulate_imports_only_the_policy_language(argv, tmp_path):
    policy = tmp_path / "all.json"
    policy.write_text(ALLOW_ALL)
    code, modules = imported_by(*(a.replace("{policy}", str(policy)) for a in argv))
    assert code == 0
    assert heavy(modules, SERVER_STACK) == []
    assert heavy(modules, ("scanner", "registry.auth.identities", "registry.metadata")) == []


@pytest.mark.parametrize("command", ["iam", "scanner", "webhooks"])
def test_help_of_other_commands_stays_off_the_network_stack(command):
    code, modules = imported_by(command, "--help")
    assert code == 0
    assert heavy(modules, ("aiohttp", "cryptography", "botocore", "boto3")) == []


def test_unknown_command_is_a_usage_error():
    code, _ = imported_by("nonsense")
    assert code == 2
