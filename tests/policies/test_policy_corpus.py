"""The JSON case corpus: one file per topic in `cases/`, each case a specification.

Case shape (see cases/*.json):
    {"description": str,
     "request": {...},                 # policy_testkit.request spec
     "identity": [policy names], "resource": [policy names],
     "decision": "allowed" | "explicitDeny" | "implicitDeny",
     "deciding": ["<policy>[<statement index>]", ...],   # order-insensitive
     "reason"?: str, "message"?: str, "errors"?: [str]}
File-level "policies" maps a name to {"kind": "identity"|"resource", "document": {...}}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from policy_testkit import request

from policies import PolicyKind, evaluate, parse_policy

CASES_DIR = Path(__file__).parent / "cases"


def _load() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.json")):
        corpus = json.loads(path.read_text())
        policies = {
            name: parse_policy(spec["document"], kind=PolicyKind(spec["kind"]), name=name)
            for name, spec in corpus["policies"].items()
        }
        for i, case in enumerate(corpus["cases"]):
            params.append(pytest.param(policies, case, id=f"{path.stem}[{i}]"))
    return params


CASES = _load()


def test_corpus_is_substantial() -> None:
    assert len(CASES) >= 120
    assert len(list(CASES_DIR.glob("*.json"))) >= 8


@pytest.mark.parametrize(("policies", "case"), CASES)
def test_case(policies: dict[str, Any], case: dict[str, Any]) -> None:
    identity = [policies[n] for n in case.get("identity", [])]
    resource = [policies[n] for n in case.get("resource", [])]
    assert all(p.kind is PolicyKind.IDENTITY for p in identity), case["description"]
    assert all(p.kind is PolicyKind.RESOURCE for p in resource), case["description"]

    decision = evaluate(request(case["request"]), identity, resource)

    assert decision.decision == case["decision"], case["description"]
    deciding = sorted(f"{m.policy}[{m.index}]" for m in decision.matched_statements)
    assert deciding == sorted(case["deciding"]), case["description"]
    if "reason" in case:
        assert decision.reason.value == case["reason"], case["description"]
    if "message" in case:
        assert decision.denial_message() == case["message"], case["description"]
    assert list(decision.errors) == case.get("errors", []), case["description"]
