"""Strict JSON text: the one loader every client-supplied JSON document goes through.

Python's `json.loads` is lenient in ways a server cannot afford:

- nesting is limited only by the interpreter stack, so 100,000 `[` raise `RecursionError`
  (not a `ValueError`) — a 500 instead of a client error;
- an integer of more than 4,300 digits raises a bare `ValueError` from `int()` (and with
  `-X int_max_str_digits=0` converting it costs quadratic time);
- `"\\ud800"` decodes to a lone surrogate, a `str` that later fails to encode to UTF-8 (when
  stored, logged or echoed);
- `json.loads(bytes)` silently accepts UTF-16 and UTF-32 and skips a UTF-8 byte order mark;
- `NaN`, `Infinity` and `-Infinity` are accepted although they are not JSON.

`strict_loads` refuses all of these with `JsonTextError` (a `ValueError`), checked in an order
that never recurses on hostile input: the bytes must be UTF-8 (RFC 8259 §8.1) without a byte
order mark (a manifest's digest is over its exact bytes, and Go's encoding/json rejects a BOM
too); the bracket depth is measured by a linear scan of the text (strings skipped) before the
parser runs; integer literals are length-checked before `int()`; lone surrogate escapes are
looked for after parsing, only when the text holds a `\\uD8xx`-`\\uDFxx` escape at all.

Each API picks its own depth limit, a few times the deepest document it legitimately accepts
(policies nest 6 levels, ECR inputs 6, image manifests 5); see the callers' constants.

For policy documents, `loads` also keeps what the validator must see: `json.loads` silently
keeps the last of duplicate keys and turns numbers into `int`/`float`. AWS rejects duplicate
keys (`Syntax errors in policy.`) and accepts numbers only where a string value is expected in a
condition, so `loads` records duplicates on each object (`JsonObject.duplicates`) and keeps
numbers as their source text (`JsonNumber`, a `str` subclass), so `"Sid": 1` can be told apart
from `"Sid": "1"` and `1.50` stays `1.50`.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, Callable, TypeGuard

__all__ = [
    "MAX_INT_DIGITS",
    "POLICY_MAX_DEPTH",
    "JsonNumber",
    "JsonObject",
    "JsonTextError",
    "is_text",
    "loads",
    "strict_loads",
]

# CPython's own default guard (sys.int_info.default_max_str_digits), enforced here whatever
# the interpreter was started with, so that the rule does not depend on `-X` options.
MAX_INT_DIGITS = 4300
# An IAM policy nests at most 6 levels (policy > Statement list > statement > Condition >
# operator > key > value list).
POLICY_MAX_DEPTH = 32

# A JSON string, or the rest of the text when a string is unterminated. Possessive loops never
# backtrack, so every position is looked at once: linear time even for `"\"\"\"…`.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_DEPTH_STEP = [0] * 256
for _open in b"[{":
    _DEPTH_STEP[_open] = 1
for _close in b"]}":
    _DEPTH_STEP[_close] = -1
# An escape of a UTF-16 surrogate code unit (JSON spells the escape with a lower-case `u`).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonTextError(ValueError):
    """The text is not JSON this server accepts; the message says why, in plain words."""


class JsonNumber(str):
    """A JSON number, kept as its source text."""

    __slots__ = ()


class JsonObject(dict[str, Any]):
    """A JSON object that remembers keys that occurred more than once."""

    duplicates: tuple[str, ...] = ()


def strict_loads(
    data: str | bytes | bytearray,
    *,
    max_depth: int,
    max_int_digits: int = MAX_INT_DIGITS,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    parse_int: Callable[[str], Any] = int,
    parse_float: Callable[[str], Any] | None = None,
) -> Any:
    """Parse JSON text strictly (see the module docstring for every rule).

    Args:
        data: UTF-8 bytes, or text already decoded.
        max_depth: the most arrays/objects allowed inside one another (`[]` is depth 1).
        max_int_digits: the longest integer literal allowed, sign excluded.
        object_pairs_hook, parse_int, parse_float: as for `json.loads`.

    Raises:
        JsonTextError: not UTF-8, a byte order mark, nested deeper than `max_depth`, an
            integer longer than `max_int_digits`, a lone surrogate, `NaN`/`Infinity`, or
            not JSON at all.
    """
    text = _text(data)
    depth = _depth(text, max_depth)
    if depth > max_depth:
        raise JsonTextError(f"JSON nested deeper than {max_depth} levels")

    def integer(literal: str) -> Any:
        if len(literal) - literal.startswith("-") > max_int_digits:
            raise JsonTextError(f"JSON integer longer than {max_int_digits} digits")
        return parse_int(literal)

    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook, parse_int=integer,
                           parse_float=parse_float, parse_constant=_reject_constant)
    except JsonTextError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonTextError(str(exc)) from None
    except RecursionError:  # unreachable after the depth scan; never let it become a 500
        raise JsonTextError("JSON nested too deeply") from None
    except ValueError as exc:  # a parse hook refused a value
        raise JsonTextError(f"not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and _holds_surrogate(value):
        raise JsonTextError("JSON string holds a lone UTF-16 surrogate")
    return value


def _text(data: str | bytes | bytearray) -> str:
    if isinstance(data, (bytes, bytearray)):
        if data.startswith(b"\xef\xbb\xbf"):
            raise JsonTextError("JSON text starts with a byte order mark")
        try:
            # The strict codec also refuses UTF-8-encoded surrogates (b"\xed\xa0\x80").
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonTextError(f"JSON text is not UTF-8 (byte {exc.start})") from None
    if data.startswith("\ufeff"):
        raise JsonTextError("JSON text starts with a byte order mark")
    if _SURROGATE.search(data):
        raise JsonTextError("JSON text holds a lone UTF-16 surrogate")
    return data


def _depth(text: str, limit: int) -> int:
    """The deepest bracket nesting outside strings (linear time, no recursion)."""
    if text.count("[") + text.count("{") <= limit:
        return 0  # cannot exceed the limit, whatever the structure
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=0))


def _holds_surrogate(value: Any) -> bool:
    """Whether any key or string in the parsed value holds a surrogate code point."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


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
    raise JsonTextError(f"{name} is not valid JSON")


def loads(text: str | bytes) -> Any:
    """Parse a policy document's JSON text (strictly, with `POLICY_MAX_DEPTH`).

    Raises:
        JsonTextError: the text is not JSON (see `strict_loads`); a `ValueError`.
    """
    return strict_loads(text, max_depth=POLICY_MAX_DEPTH, object_pairs_hook=_object,
                        parse_int=JsonNumber, parse_float=JsonNumber)


def is_text(value: Any) -> TypeGuard[str]:
    """Whether `value` is a JSON string (not a number kept as text)."""
    return isinstance(value, str) and not isinstance(value, JsonNumber)
