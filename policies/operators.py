"""Condition operators: the table of operator families and the value parsers they share.

The parsers are memoised (bounded): request values such as `aws:SourceIp` or a timestamp repeat
across the policies of one request and across requests, and their results are immutable.

The parser uses this module to reject unknown operators and malformed policy values when a
policy is stored; the evaluator uses the same parsers on request values, where a value that
cannot be parsed makes the condition false (never a crash, never a match).

Operator names are case-sensitive (`stringEquals` is invalid, §2.1). A full operator is
`[ForAllValues:|ForAnyValue:]<base>[IfExists]`; `Null` takes neither modifier.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import operator
import re
from collections.abc import Callable
from functools import lru_cache
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

__all__ = [
    "BASE_OPERATORS",
    "Family",
    "Operator",
    "OperatorSpec",
    "parse_binary",
    "parse_bool",
    "parse_date",
    "parse_ip",
    "parse_network",
    "parse_number",
    "parse_operator",
]


class Family(Enum):
    STRING = "String"
    NUMERIC = "Numeric"
    DATE = "Date"
    BOOL = "Bool"
    BINARY = "Binary"
    IP = "IpAddress"
    ARN = "Arn"
    NULL = "Null"


# Families whose policy values may hold policy variables (§4.3, §6).
VARIABLE_FAMILIES = frozenset({Family.STRING, Family.ARN, Family.BOOL})


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    """A base operator: its family, how a request value is compared with a policy value
    (`compare(request, policy)`), and whether the result is negated (the `Not` operators)."""

    name: str
    family: Family
    compare: Callable[[Any, Any], bool]
    negated: bool = False
    ignore_case: bool = False
    like: bool = False


def _spec(name: str, family: Family, compare: Callable[[Any, Any], bool] = operator.eq, **kw: bool) -> OperatorSpec:
    return OperatorSpec(name, family, compare, **kw)


_ORDERINGS = (
    ("Equals", operator.eq, False),
    ("NotEquals", operator.eq, True),
    ("LessThan", operator.lt, False),
    ("LessThanEquals", operator.le, False),
    ("GreaterThan", operator.gt, False),
    ("GreaterThanEquals", operator.ge, False),
)

BASE_OPERATORS: dict[str, OperatorSpec] = {
    s.name: s
    for s in (
        _spec("StringEquals", Family.STRING),
        _spec("StringNotEquals", Family.STRING, negated=True),
        _spec("StringEqualsIgnoreCase", Family.STRING, ignore_case=True),
        _spec("StringNotEqualsIgnoreCase", Family.STRING, negated=True, ignore_case=True),
        _spec("StringLike", Family.STRING, like=True),
        _spec("StringNotLike", Family.STRING, negated=True, like=True),
        *(_spec(f"Numeric{n}", Family.NUMERIC, c, negated=neg) for n, c, neg in _ORDERINGS),
        *(_spec(f"Date{n}", Family.DATE, c, negated=neg) for n, c, neg in _ORDERINGS),
        _spec("Bool", Family.BOOL),
        _spec("BinaryEquals", Family.BINARY),
        _spec("IpAddress", Family.IP),
        _spec("NotIpAddress", Family.IP, negated=True),
        # ArnEquals ≡ ArnLike: both match component-wise with wildcards (§4.3).
        _spec("ArnEquals", Family.ARN, like=True),
        _spec("ArnLike", Family.ARN, like=True),
        _spec("ArnNotEquals", Family.ARN, negated=True, like=True),
        _spec("ArnNotLike", Family.ARN, negated=True, like=True),
        _spec("Null", Family.NULL),
    )
}

FOR_ALL_VALUES = "ForAllValues"
FOR_ANY_VALUE = "ForAnyValue"


@dataclass(frozen=True, slots=True)
class Operator:
    """A full operator as written: set qualifier (`None`, `ForAllValues`, `ForAnyValue`),
    base spec and the `IfExists` flag."""

    text: str
    spec: OperatorSpec
    qualifier: str | None = None
    if_exists: bool = False


def parse_operator(text: str) -> Operator | None:
    """Parse an operator name; `None` when it is not a supported operator."""
    qualifier, sep, rest = text.partition(":")
    if not sep:
        qualifier, rest = "", text
    elif qualifier not in (FOR_ALL_VALUES, FOR_ANY_VALUE):
        return None
    if_exists = rest.endswith("IfExists")
    base = rest[: -len("IfExists")] if if_exists else rest
    spec = BASE_OPERATORS.get(base)
    if spec is None or (spec.family is Family.NULL and (if_exists or qualifier)):
        return None
    return Operator(text, spec, qualifier or None, if_exists)


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_EPOCH = re.compile(r"[+-]?\d+(?:\.\d+)?")


@lru_cache(maxsize=4096)
def parse_number(text: str) -> Decimal | None:
    """An integer or decimal (`Decimal`, exact); `None` for anything else, NaN included."""
    t = text.strip()
    if not _NUMBER.fullmatch(t):
        return None
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


@lru_cache(maxsize=4096)
def parse_date(text: str) -> float | None:
    """W3C ISO 8601 date/time or epoch seconds, as epoch seconds; naive times are UTC."""
    t = text.strip()
    if _EPOCH.fullmatch(t):
        return float(t)
    try:
        moment = datetime.fromisoformat(t)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@lru_cache(maxsize=4096)
def parse_bool(text: str) -> bool | None:
    """`"true"`/`"false"`, case-insensitively."""
    t = text.strip().lower()
    return True if t == "true" else False if t == "false" else None


@lru_cache(maxsize=4096)
def parse_binary(text: str) -> bytes | None:
    """Strict base64; `None` when not valid base64."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


@lru_cache(maxsize=4096)
def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR block (host bits allowed) or a bare address (a /32 or /128)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A request's IP address value."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None
