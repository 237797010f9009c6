"""Loading policy JSON without losing what the validator must see.

`json.loads` silently keeps the last of duplicate keys and turns numbers into `int`/`float`.
AWS rejects duplicate keys (`Syntax errors in policy.`) and accepts numbers only where a string
value is expected in a condition, so this loader records duplicates on each object
(`JsonObject.duplicates`) and keeps numbers as their source text (`JsonNumber`, a `str`
subclass), so `"Sid": 1` can be told apart from `"Sid": "1"` and `1.50` stays `1.50`.
`NaN`/`Infinity` are not JSON and are rejected.
"""

from __future__ import annotations

import json
from typing import Any, TypeGuard

__all__ = ["JsonNumber", "JsonObject", "is_text", "loads"]


class JsonNumber(str):
    """A JSON number, kept as its source text."""

    __slots__ = ()


class JsonObject(dict[str, Any]):
    """A JSON object that remembers keys that occurred more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject()
    dups = []
    for key, value in pairs:
        if key in obj:
            dups.append(key)
        obj[key] = value
    if dups:
        obj.duplicates = tuple(dups)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str) -> Any:
    """Parse JSON text.

    Raises:
        ValueError: the text is not JSON (`json.JSONDecodeError` is a `ValueError`).
    """
    return json.loads(
        text,
        object_pairs_hook=_object,
        parse_int=JsonNumber,
        parse_float=JsonNumber,
        parse_constant=_reject_constant,
    )


def is_text(value: Any) -> TypeGuard[str]:
    """Whether `value` is a JSON string (not a number kept as text)."""
    return isinstance(value, str) and not isinstance(value, JsonNumber)
