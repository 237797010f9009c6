"""Render a `Policy` back into a JSON document.

`parse_policy(render_policy(p), kind=p.kind, name=p.name) == p` for every valid policy: the
model is normalised, and rendering writes one-element lists as plain strings, which parse back
to the same 1-tuples. Element order follows IAM's documentation order.
"""

from __future__ import annotations

import json
from typing import Any

from policies.model import Patterns, Policy, Statement

__all__ = ["dumps", "render_policy"]


def _one_or_many(values: tuple[str, ...]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


def _patterns(out: dict[str, Any], element: str, patterns: Patterns | None) -> None:
    if patterns is not None:
        out[f"Not{element}" if patterns.negated else element] = _one_or_many(patterns.values)


def _statement(st: Statement) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if st.sid is not None:
        out["Sid"] = st.sid
    out["Effect"] = st.effect.value
    if st.principal is not None:
        block = {ptype: _one_or_many(values) for ptype, values in st.principal.entries}
        out["NotPrincipal" if st.principal.negated else "Principal"] = block
    _patterns(out, "Action", st.action)
    _patterns(out, "Resource", st.resource)
    if st.conditions:
        condition: dict[str, dict[str, Any]] = {}
        for c in st.conditions:
            condition.setdefault(c.operator, {})[c.key] = _one_or_many(c.values)
        out["Condition"] = condition
    return out


def render_policy(policy: Policy) -> dict[str, Any]:
    """The policy as a JSON-ready dict (`Statement` is always a list)."""
    doc: dict[str, Any] = {}
    if policy.version is not None:
        doc["Version"] = policy.version
    if policy.id is not None:
        doc["Id"] = policy.id
    doc["Statement"] = [_statement(st) for st in policy.statements]
    return doc


def dumps(policy: Policy, *, indent: int | None = 2) -> str:
    """The policy as JSON text."""
    return json.dumps(render_policy(policy), indent=indent)
