"""Wildcard patterns (`*`, `?`) compiled once into matchers over escaped text.

Contract: in a pattern `*` matches any run of characters (including none) and `?` exactly one
character; every other character — `.`, `+`, `(`, `\\` and so on — is literal. Text is escaped
before it becomes a regular expression, so a policy can never inject regex syntax (moto's
unescaped `.` is the counter-example, iam-policy-evaluation.md §10).

Two shapes of match exist:

- plain (Action, `StringLike`): `*` crosses every character, including `/` and `:`;
- ARN (`Resource`, `ArnLike`): the first five colon-separated components are matched one by
  one, so a `*` there never crosses `:`; in the resource part (after the 5th colon) `*` crosses
  `/` and `:` (§2.3, §4.3: "each of the 6 colon-separated ARN components is matched separately").

A pattern may be assembled from chunks: `Chunk(text, literal=False)` is pattern text with live
wildcards; `literal=True` is matched verbatim (a resolved policy variable, or `${*}`).

Matching cost is bounded. A pattern with at most one `*` per region (the whole text; or each ARN
component) becomes a regular expression, which then runs in linear time. Several `*` in one
region (`*a*a*a*b`) would make a backtracking regex take O(nᵏ) steps — a denial of service
through a repository policy — so such patterns use `SegmentGlob`, which finds the fixed-length
pieces between stars left to right (the classic greedy glob algorithm, O(n·m)). Both kinds
expose `.match(text)`, truthy on a full match and `None` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple, Protocol

__all__ = [
    "Chunk",
    "FullMatcher",
    "compile_chunks",
    "compile_patterns",
    "compile_source",
    "glob_fragment",
    "has_wildcard",
    "is_linear",
    "regex_source",
    "segment_glob",
]


class Chunk(NamedTuple):
    """A piece of a pattern: live wildcard text, or literal text when `literal` is true."""

    text: str
    literal: bool = False


class FullMatcher(Protocol):
    """Anything with a full-match `.match(text)`: a compiled expression or a `SegmentGlob`."""

    def match(self, text: str) -> object | None: ...


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


def is_linear(chunks: Iterable[Chunk], *, arn: bool = False) -> bool:
    """Whether the regex for `chunks` is safe: at most one `*` per region (see module doc)."""
    stars = [0] * 6
    colons = 0
    for text, literal in chunks:
        if literal:
            colons += text.count(":")
            continue
        for ch in text:
            if ch == ":":
                colons += 1
            elif ch == "*":
                stars[min(colons, 5) if arn else 0] += 1
    return max(stars) <= 1


@lru_cache(maxsize=4096)
def compile_source(source: str, ignore_case: bool) -> re.Pattern[str]:
    """Compile regex source as a full match (`.match` anchors at the start, `\\Z` at the end).

    Memoised: a pattern is compiled once per process. Callers pass only sources built from
    patterns for which `is_linear` holds.
    """
    # DOTALL: a `*` must also cross newlines, which may occur in context values.
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(f"(?:{source})\\Z", flags)


_STAR = object()  # a live `*` in a token list; every other token is a literal or `?` run


class _Glob:
    """Plain glob over one region: fixed-length pieces separated by stars."""

    __slots__ = ("pieces", "lengths", "starred")

    def __init__(self, tokens: Sequence[object], flags: int) -> None:
        pieces: list[list[str]] = [[]]
        for token in tokens:
            if token is _STAR:
                pieces.append([])
            elif isinstance(token, str):
                pieces[-1].append(token)
        self.starred = len(pieces) > 1
        self.pieces = [re.compile("".join(p), flags) for p in pieces]
        self.lengths = [len(p) for p in pieces]  # every non-star token is one character

    def match(self, text: str) -> bool:
        pieces, lengths = self.pieces, self.lengths
        if not self.starred:
            return pieces[0].fullmatch(text) is not None
        end = len(text) - lengths[-1]
        if end < lengths[0] or pieces[0].fullmatch(text, 0, lengths[0]) is None:
            return False
        if pieces[-1].fullmatch(text, end) is None:
            return False
        pos = lengths[0]
        for piece in pieces[1:-1]:
            # Leftmost match of each middle piece is optimal for globs: a later one never
            # leaves more room for the pieces after it.
            found = piece.search(text, pos, end)
            if found is None:
                return False
            pos = found.end()
        return True


def _tokens(chunks: Iterable[Chunk]) -> list[object]:
    """One token per character: its escaped regex, `?` as `.`, or the `_STAR` marker."""
    tokens: list[object] = []
    for text, literal in chunks:
        if literal:
            tokens.extend(re.escape(ch) for ch in text)
            continue
        for ch in text:
            tokens.append(_STAR if ch == "*" else _ANY_ONE if ch == "?" else re.escape(ch))
    return tokens


class SegmentGlob:
    """A full-match glob without backtracking blow-up; `arn=True` matches component-wise."""

    def __init__(self, chunks: Sequence[Chunk], *, arn: bool, ignore_case: bool) -> None:
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        tokens = _tokens(chunks)
        self.arn = arn
        if not arn:
            self.regions = [_Glob(tokens, flags)]
            return
        regions: list[list[object]] = [[]]
        for token in tokens:
            if token == ":" and len(regions) < 6:  # re.escape(":") is ":"
                regions.append([])
            else:
                regions[-1].append(token)
        self.regions = [_Glob(r, flags) for r in regions]

    def match(self, text: str) -> bool | None:
        count = len(self.regions)
        parts = text.split(":", count - 1)
        # Before the 5th colon nothing may cross ':', so the text needs exactly as many
        # components as the pattern; only a full ARN's resource part may contain ':'.
        if len(parts) != count or (self.arn and count < 6 and ":" in parts[-1]):
            return None
        return True if all(g.match(p) for g, p in zip(self.regions, parts)) else None


class _Either:
    """Alternatives split between one linear regex and `SegmentGlob`s."""

    __slots__ = ("regex", "globs")

    def __init__(self, regex: re.Pattern[str] | None, globs: list[SegmentGlob]) -> None:
        self.regex = regex
        self.globs = globs

    def match(self, text: str) -> bool | None:
        if self.regex is not None and self.regex.match(text) is not None:
            return True
        return True if any(g.match(text) for g in self.globs) else None


@lru_cache(maxsize=1024)
def segment_glob(chunks: tuple[Chunk, ...], arn: bool, ignore_case: bool = False) -> SegmentGlob:
    """A memoised `SegmentGlob` (for patterns resolved per request)."""
    return SegmentGlob(chunks, arn=arn, ignore_case=ignore_case)


def compile_chunks(
    alternatives: Sequence[Sequence[Chunk]], *, arn: bool = False, ignore_case: bool = False
) -> FullMatcher | None:
    """Compile alternatives (OR) into one full matcher; `None` when there are none."""
    if not alternatives:
        return None
    linear = [a for a in alternatives if is_linear(a, arn=arn)]
    regex = compile_source("|".join(regex_source(a, arn=arn) for a in linear), ignore_case) if linear else None
    if len(linear) == len(alternatives):
        return regex
    globs = [SegmentGlob(a, arn=arn, ignore_case=ignore_case) for a in alternatives if not is_linear(a, arn=arn)]
    return _Either(regex, globs)


def compile_patterns(
    patterns: Iterable[str], *, arn: bool = False, ignore_case: bool = False
) -> FullMatcher | None:
    """Compile plain pattern strings (no variables) into one full matcher."""
    return compile_chunks([(Chunk(p),) for p in patterns], arn=arn, ignore_case=ignore_case)
