"""Policy variables: `${key}`, `${key, 'default'}` and the escapes `${*}`, `${?}`, `${$}`.

Contract (iam-policy-evaluation.md §6):

- variables exist only in `"Version": "2012-10-17"` documents; otherwise `${…}` is literal text;
- key names are case-insensitive; a key resolves only when the request has exactly one value
  for it (only single-valued keys can be variables); otherwise the default, if any, is used;
- a variable that cannot be resolved is *null*: the pattern or value holding it matches nothing
  (so `StringEquals` is false and `StringNotEquals` true, and a `Resource` never matches);
- resolved values and escapes are literal text: a user named `a*` does not become a wildcard.

A template is a tuple of parts: `str` (pattern text, wildcards live), `Literal` (escape) or
`Var`. Parsing is done once at policy-compile time; resolving happens per request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from policies.wildcard import Chunk, glob_fragment

__all__ = [
    "KEY_SYNTAX",
    "Literal",
    "PatternTemplate",
    "Template",
    "Var",
    "VariableError",
    "compile_pattern_template",
    "has_variables",
    "parse_template",
    "resolve",
    "resolve_text",
]

# A condition key: `vendor:name`, optionally `/qualifier` (tag keys may hold `:` and `/`).
KEY_SYNTAX = re.compile(r"[A-Za-z0-9-]+:[^:/\s]+(?:/\S+)?")

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_WITH_DEFAULT = re.compile(r"\s*([^,\s]+)\s*(?:,\s*'([^']*)'\s*)?")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}
_escape = lru_cache(maxsize=4096)(re.escape)  # variable values repeat across statements


class VariableError(ValueError):
    """A malformed `${…}` expression; the message names it."""


@dataclass(frozen=True, slots=True)
class Literal:
    """Text matched verbatim, wildcards included (an escape such as `${*}`)."""

    text: str


@dataclass(frozen=True, slots=True)
class Var:
    """A reference to a request-context key (stored lower-cased) with an optional default."""

    key: str
    default: str | None = None


Template = tuple[str | Literal | Var, ...]


def parse_template(text: str, *, enabled: bool) -> Template:
    """Split `text` into pattern text, escapes and variables.

    Raises:
        VariableError: `enabled` and the text holds an unterminated or malformed `${…}`.
    """
    if not enabled or "${" not in text:
        return (text,)
    parts: list[str | Literal | Var] = []
    pos = 0
    for m in _VARIABLE.finditer(text):
        if "${" in text[pos : m.start()]:
            raise VariableError(f"unterminated policy variable in {text!r}")
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        parts.append(_parse_inner(m.group(1), m.group(0)))
        pos = m.end()
    if "${" in text[pos:]:
        raise VariableError(f"unterminated policy variable in {text!r}")
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def _parse_inner(inner: str, whole: str) -> Literal | Var:
    if inner in _ESCAPES:
        return Literal(_ESCAPES[inner])
    m = _WITH_DEFAULT.fullmatch(inner)
    if m is None or KEY_SYNTAX.fullmatch(m.group(1)) is None:
        raise VariableError(f"invalid policy variable {whole}")
    return Var(m.group(1).lower(), m.group(2))


def has_variables(template: Template) -> bool:
    """Return whether resolving `template` depends on the request."""
    return any(isinstance(p, Var) for p in template)


def resolve(template: Template, context: Mapping[str, tuple[str, ...]]) -> tuple[Chunk, ...] | None:
    """Resolve variables against `context` (lower-cased keys); `None` when one is null."""
    chunks: list[Chunk] = []
    for part in template:
        if isinstance(part, str):
            chunks.append(Chunk(part))
        elif isinstance(part, Literal):
            chunks.append(Chunk(part.text, True))
        else:
            values = context.get(part.key)
            if values is not None and len(values) == 1:
                chunks.append(Chunk(values[0], True))
            elif part.default is not None:
                chunks.append(Chunk(part.default, True))
            else:
                return None
    return tuple(chunks)


def resolve_text(template: Template, context: Mapping[str, tuple[str, ...]]) -> str | None:
    """Resolve to plain text (for operators without wildcards); `None` when one is null."""
    chunks = resolve(template, context)
    return None if chunks is None else "".join(c.text for c in chunks)


@dataclass(frozen=True, slots=True)
class PatternTemplate:
    """A wildcard template translated to regex fragments once, at compile time; per request
    only the variable values are escaped and spliced in."""

    parts: tuple[str | Var, ...]  # str: regex source

    def superset_source(self) -> str:
        """Regex source with every variable widened to `.*`: whatever the variables resolve to
        (literal text), a value the resolved pattern matches also matches this, so a miss here
        rejects without resolving anything."""
        return "".join(p if type(p) is str else ".*" for p in self.parts)

    def source(self, context: Mapping[str, tuple[str, ...]]) -> str | None:
        """The regex source for this request; `None` when a variable is null."""
        out: list[str] = []
        for part in self.parts:
            if type(part) is str:
                out.append(part)
                continue
            values = context.get(part.key)  # type: ignore[union-attr]
            if values is not None and len(values) == 1:
                out.append(_escape(values[0]))
            elif part.default is not None:  # type: ignore[union-attr]
                out.append(_escape(part.default))  # type: ignore[union-attr]
            else:
                return None
        return "".join(out)


def compile_pattern_template(template: Template, *, arn: bool) -> PatternTemplate:
    """Translate a template's pattern text and escapes into regex source (see `wildcard`)."""
    parts: list[str | Var] = []
    colons = 0
    for part in template:
        if isinstance(part, Var):
            parts.append(part)
            continue
        if isinstance(part, Literal):
            source = re.escape(part.text)
            colons += part.text.count(":")
        else:
            source, colons = glob_fragment(part, arn=arn, colons=colons)
        if parts and type(parts[-1]) is str:
            parts[-1] = parts[-1] + source  # type: ignore[operator]
        else:
            parts.append(source)
    return PatternTemplate(tuple(parts))
