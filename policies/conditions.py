"""Compiled `Condition` clauses and their evaluation against a request context.

Semantics (iam-policy-evaluation.md §4):

- a clause is one (operator, key, values); a statement applies only if every clause is true
  (AND across operators and keys); the values of one clause are OR'ed;
- per request value `v`, `hit(v)` = "v matches at least one policy value"; a negated operator
  (`StringNotEquals`, `NotIpAddress`, …) turns that into "v matches none of them" (NOR);
- without a set qualifier a clause is true when some value satisfies it (positive operators)
  or when every value does (negated operators) — for a single-valued key both mean "the value";
  `ForAnyValue:` needs one value, `ForAllValues:` needs every value;
- missing key (absent, or present with no values): false, except negated operators, `…IfExists`
  and `ForAllValues:`, which are true; `ForAnyValue:` is false; `Null` tests presence;
- a request value the operator cannot parse (a non-number for `NumericLessThan`) makes the
  clause false and is reported as an evaluation error — never a crash, never a match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies import operators as ops
from policies.model import Condition
from policies.operators import Family, Operator
from policies.variables import (
    PatternTemplate,
    Template,
    compile_pattern_template,
    has_variables,
    match_templates,
    parse_template,
    resolve,
    resolve_text,
)
from policies.wildcard import compile_chunks

__all__ = ["CompiledCondition", "compile_condition"]

Context = Mapping[str, tuple[str, ...]]
# A value matcher answers "does this request value match any policy value?"; None = unparseable.
Matcher = Callable[[str], bool | None]

_PARSERS: dict[Family, Callable[[str], Any]] = {
    Family.NUMERIC: ops.parse_number,
    Family.DATE: ops.parse_date,
    Family.BOOL: ops.parse_bool,
    Family.BINARY: ops.parse_binary,
    Family.IP: ops.parse_ip,
}
_KIND_NAMES = {
    Family.NUMERIC: "a number",
    Family.DATE: "an ISO 8601 date or epoch seconds",
    Family.BOOL: '"true" or "false"',
    Family.BINARY: "base64",
    Family.IP: "an IP address",
}


def _never(_value: str) -> bool:
    return False


def _static_matcher(op: Operator, values: tuple[str, ...]) -> Matcher:
    """Build the matcher for resolved policy values of a non-pattern operator (not Like/Arn)."""
    spec = op.spec
    family = spec.family
    if family is Family.STRING and not spec.like:
        if spec.ignore_case:
            folded = frozenset(v.casefold() for v in values)
            return lambda v: v.casefold() in folded
        exact = frozenset(values)
        return lambda v: v in exact
    if family is Family.BOOL:
        wanted = frozenset(ops.parse_bool(v) for v in values) - {None}
        return lambda v: None if (b := ops.parse_bool(v)) is None else b in wanted
    if family is Family.BINARY:
        blobs = frozenset(ops.parse_binary(v) for v in values)
        return lambda v: None if (b := ops.parse_binary(v)) is None else b in blobs
    if family is Family.IP:
        nets = tuple(n for v in values if (n := ops.parse_network(v)) is not None)
        return lambda v: None if (ip := ops.parse_ip(v)) is None else any(
            ip.version == n.version and ip in n for n in nets
        )
    parse = _PARSERS[family]
    targets = tuple(parse(v) for v in values)
    compare = spec.compare
    if len(targets) == 1:  # the usual case; spares a generator per request value
        (target,) = targets
        return lambda v: None if (x := parse(v)) is None else compare(x, target)
    return lambda v: None if (x := parse(v)) is None else any(compare(x, t) for t in targets)


@dataclass(frozen=True, eq=False)
class CompiledCondition:
    """One clause, ready to evaluate. `where` names it in evaluation errors."""

    op: Operator
    key: str  # lower-cased: condition key names are case-insensitive
    where: str
    templates: tuple[Template, ...]
    matcher: Matcher | None  # precomputed when no template holds a variable
    patterns: tuple[PatternTemplate, ...] = ()  # for Like/Arn operators with variables
    null_wants: frozenset[bool] = frozenset()
    # Flattened from `op` in __post_init__.
    _absent: bool = field(init=False, repr=False)
    _is_null: bool = field(init=False, repr=False)
    _negated: bool = field(init=False, repr=False)
    _every: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Flattened once: `test` runs for every applicable statement of every request.
        op = self.op
        is_null = op.spec.family is Family.NULL
        if is_null:
            absent = True in self.null_wants
        elif op.if_exists or op.qualifier == ops.FOR_ALL_VALUES:
            absent = True
        elif op.qualifier == ops.FOR_ANY_VALUE:
            absent = False
        else:
            absent = op.spec.negated
        every = op.qualifier == ops.FOR_ALL_VALUES or (op.qualifier is None and op.spec.negated)
        object.__setattr__(self, "_absent", absent)
        object.__setattr__(self, "_is_null", is_null)
        object.__setattr__(self, "_negated", op.spec.negated)
        object.__setattr__(self, "_every", every)

    def test(self, context: Context, errors: list[str]) -> bool:
        """Return whether the clause holds; append to `errors` for unparseable values."""
        values = context.get(self.key)
        if not values:
            return self._absent
        if self._is_null:
            return False in self.null_wants
        match = self.matcher or self._resolve(context)
        negated = self._negated
        if len(values) == 1:  # one value: "any" and "all" agree, whatever the qualifier
            hit = match(values[0])
            if hit is None:
                return self._unparseable(values[0], errors)
            return hit is not negated
        satisfied = []
        for value in values:
            hit = match(value)
            if hit is None:
                return self._unparseable(value, errors)
            satisfied.append(hit is not negated)
        return all(satisfied) if self._every else any(satisfied)

    def _unparseable(self, value: str, errors: list[str]) -> bool:
        errors.append(f"{self.where}: request value {value!r} is not {_KIND_NAMES[self.op.spec.family]}")
        return False

    def _resolve(self, context: Context) -> Matcher:
        """Substitute variables; a policy value whose variable is null matches nothing."""
        spec = self.op.spec
        if spec.like:
            patterns = self.patterns
            return lambda v: match_templates(patterns, v, context)
        texts = tuple(s for t in self.templates if (s := resolve_text(t, context)) is not None)
        return _static_matcher(self.op, texts) if texts else _never


def compile_condition(
    condition: Condition, op: Operator, *, variables: bool, where: str
) -> CompiledCondition:
    """Compile a validated clause. `variables` enables `${…}` in String, Arn and Bool values.

    Raises:
        VariableError: a value holds a malformed variable (the parser reports it first).
    """
    spec = op.spec
    enabled = variables and spec.family in ops.VARIABLE_FAMILIES
    templates = tuple(parse_template(v, enabled=enabled) for v in condition.values)
    key = condition.key.lower()
    if spec.family is Family.NULL:
        wants = frozenset(b for v in condition.values if (b := ops.parse_bool(v)) is not None)
        return CompiledCondition(op, key, where, templates, None, null_wants=wants)
    if any(has_variables(t) for t in templates):
        arn = spec.family is Family.ARN
        patterns = tuple(compile_pattern_template(t, arn=arn) for t in templates) if spec.like else ()
        return CompiledCondition(op, key, where, templates, None, patterns=patterns)
    if spec.like:
        chunks = [resolve(t, {}) or () for t in templates]
        rx = compile_chunks(chunks, arn=spec.family is Family.ARN)
        matcher: Matcher = _never if rx is None else (lambda v: rx.match(v) is not None)
    else:
        texts = tuple(resolve_text(t, {}) or "" for t in templates)
        matcher = _static_matcher(op, texts)
    return CompiledCondition(op, key, where, templates, matcher)
