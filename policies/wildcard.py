"""Wildcard patterns (`*`, `?`) compiled once into anchored regular expressions.

Contract: a pattern is text in which `*` matches any run of characters (including none) and
`?` exactly one character; every other character — `.`, `+`, `(`, `\\` and so on — is literal.
The text is escaped before it becomes a regular expression, so a policy can never inject regex
syntax (moto's unescaped `.` is the counter-example, iam-policy-evaluation.md §10).

Two shapes of match exist:

- plain (Action, `StringLike`): `*` crosses every character, including `/` and `:`;
- ARN (`Resource`, `ArnLike`): the first five colon-separated components are matched one by
  one, so a `*` there never crosses `:`; in the resource part (after the 5th colon) `*` crosses
  `/` and `:` (§2.3, §4.3: "each of the 6 colon-separated ARN components is matched separately").

A pattern may be assembled from chunks: `Chunk(text, literal=False)` is pattern text with live
wildcards, `literal=True` is text to be matched verbatim (a resolved policy variable, or the
`${*}` escape). Compiled expressions are memoised, so a pattern is compiled once per process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

__all__ = [
    "Chunk",
    "compile_chunks",
    "compile_patterns",
    "compile_source",
    "glob_fragment",
    "has_wildcard",
    "regex_source",
]


class Chunk(NamedTuple):
    """A piece of a pattern: live wildcard text, or literal text when `literal` is true."""

    text: str
    literal: bool = False


_ANY_RUN = ".*"
_ANY_ONE = "."
_IN_COMPONENT_RUN = "[^:]*"
_IN_COMPONENT_ONE = "[^:]"


def has_wildcard(text: str) -> bool:
    """Return whether `text` contains `*` or `?`."""
    return "*" in text or "?" in text


def glob_fragment(text: str, *, arn: bool = False, colons: int = 0) -> tuple[str, int]:
    """Translate pattern text into regex source; return it and the colon count after it.

    `colons` is the number of ARN component separators before `text` (ARN mode only).
    """
    if not arn and "*" not in text and "?" not in text:
        return re.escape(text), colons
    out: list[str] = []
    for ch in text:
        if ch == "*":
            out.append(_IN_COMPONENT_RUN if arn and colons < 5 else _ANY_RUN)
        elif ch == "?":
            out.append(_IN_COMPONENT_ONE if arn and colons < 5 else _ANY_ONE)
        else:
            if ch == ":":
                colons += 1
            out.append(re.escape(ch))
    return "".join(out), colons


def regex_source(chunks: Iterable[Chunk], *, arn: bool = False) -> str:
    """Return the (unanchored) regular-expression source for a pattern made of `chunks`.

    With `arn=True`, wildcards before the 5th colon stay inside their component. Colons inside
    literal chunks count towards the component position too.
    """
    out: list[str] = []
    colons = 0
    for text, literal in chunks:
        if literal:
            out.append(re.escape(text))
            colons += text.count(":")
        else:
            source, colons = glob_fragment(text, arn=arn, colons=colons)
            out.append(source)
    return "".join(out)


@lru_cache(maxsize=8192)
def compile_source(source: str, ignore_case: bool) -> re.Pattern[str]:
    # DOTALL: a `*` must also cross newlines, which may occur in context values.
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(f"(?:{source})\\Z", flags)


def compile_chunks(
    alternatives: Sequence[Sequence[Chunk]], *, arn: bool = False, ignore_case: bool = False
) -> re.Pattern[str] | None:
    """Compile alternatives (OR) into one anchored expression; `None` when there are none.

    Use the result with `.match(value)` (the expression ends in `\\Z`, so `.match` is a full
    match). Results are memoised by expression source.
    """
    if not alternatives:
        return None
    source = "|".join(regex_source(alt, arn=arn) for alt in alternatives)
    return compile_source(source, ignore_case)


def compile_patterns(
    patterns: Iterable[str], *, arn: bool = False, ignore_case: bool = False
) -> re.Pattern[str] | None:
    """Compile plain pattern strings (no variables) into one anchored expression."""
    return compile_chunks([(Chunk(p),) for p in patterns], arn=arn, ignore_case=ignore_case)
