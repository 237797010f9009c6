"""Validation of a statement's `Condition` block into `Condition` clauses.

`{"<operator>": {"<key>": value | [values]}}`: operators must be supported and spelled exactly
(`Invalid Condition type` in IAM, reported here as `unsupported condition operator`); keys are
`vendor:name[/qualifier]`; values are strings, numbers or booleans (numbers and booleans are
kept as their JSON text, `true`/`false`), a single value or a non-empty list. Each value must
parse for its operator — numbers for Numeric, ISO 8601 or epoch seconds for Date, `true`/`false`
for Bool and Null, base64 for Binary, CIDR or address for IpAddress, ARN shape for Arn — and
may contain policy variables only in String, Arn and Bool values of 2012-10-17 documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies import operators as ops
from policies.arn import parse_arn
from policies.jsondoc import JsonNumber
from policies.model import Condition, Problem
from policies.operators import Family, Operator, parse_operator
from policies.variables import KEY_SYNTAX, VariableError, has_variables, parse_template

__all__ = ["parse_conditions"]

_EXPECTED = {
    Family.NUMERIC: (ops.parse_number, "is not a number"),
    Family.DATE: (ops.parse_date, "is not an ISO 8601 date/time or epoch seconds"),
    Family.BINARY: (ops.parse_binary, "is not base64"),
    Family.IP: (ops.parse_network, "is not an IPv4 or IPv6 address or CIDR block"),
    Family.NULL: (ops.parse_bool, 'is not "true" or "false"'),
}


def parse_conditions(value: Any, path: str, *, variables: bool) -> tuple[tuple[Condition, ...], list[Problem]]:
    """Validate a `Condition` element at `path`; return the clauses and the problems found."""
    problems: list[Problem] = []
    if not isinstance(value, Mapping):
        return (), [Problem(path, "must be an object mapping condition operators to {key: values}")]
    _duplicates(value, path, problems)
    clauses: list[Condition] = []
    for op_name, block in value.items():
        op_path = f"{path}.{op_name}"
        op = parse_operator(op_name)
        if op is None:
            problems.append(Problem(op_path, "unsupported condition operator"))
            continue
        if not isinstance(block, Mapping) or not block:
            problems.append(Problem(op_path, "must be a non-empty object mapping condition keys to values"))
            continue
        _duplicates(block, op_path, problems)
        for key, raw in block.items():
            key_path = f"{op_path}.{key}"
            if ":" not in key:
                problems.append(Problem(key_path, "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."))
                continue
            if not KEY_SYNTAX.fullmatch(key):
                problems.append(Problem(key_path, f"invalid condition key {key!r}"))
                continue
            values = _values(raw, key_path, problems)
            for value_path, text in values:
                message = _check_value(op, text, variables=variables)
                if message is not None:
                    problems.append(Problem(value_path, message))
            if values:
                clauses.append(Condition(op_name, key, tuple(t for _, t in values)))
    return tuple(clauses), problems


def _duplicates(obj: Mapping[str, Any], path: str, problems: list[Problem]) -> None:
    for key in getattr(obj, "duplicates", ()):
        problems.append(Problem(f"{path}.{key}", f"Syntax errors in policy. Duplicate key {key!r}."))


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JsonNumber):
        return str.__str__(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def _values(raw: Any, path: str, problems: list[Problem]) -> list[tuple[str, str]]:
    if isinstance(raw, list):
        if not raw:
            problems.append(Problem(path, "must be a value or a non-empty list of values"))
            return []
        items = [(f"{path}[{i}]", v) for i, v in enumerate(raw)]
    else:
        items = [(path, raw)]
    out = []
    for item_path, item in items:
        text = _scalar(item)
        if text is None:
            problems.append(Problem(item_path, "condition values must be strings, numbers or booleans"))
        else:
            out.append((item_path, text))
    return out if len(out) == len(items) else []


def _check_value(op: Operator, text: str, *, variables: bool) -> str | None:
    """Return a problem message for one policy value, or `None` when it is valid."""
    family = op.spec.family
    if family in ops.VARIABLE_FAMILIES:
        try:
            template = parse_template(text, enabled=variables)
        except VariableError as exc:
            return str(exc)
        if family is Family.ARN and parse_arn(text) is None:
            return f"{text!r} is not an ARN"
        if family is Family.BOOL and not has_variables(template) and ops.parse_bool(text) is None:
            return f'{text!r} is not "true" or "false"'
        return None
    parse, complaint = _EXPECTED[family]
    return None if parse(text) is not None else f"{text!r} {complaint}"
