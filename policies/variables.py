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

from policies.wildcard import Chunk, compile_source, glob_fragment, is_linear, regex_source, segment_glob

__all__ = [
    "KEY_SYNTAX",
    "Literal",
    "PatternTemplate",
    "Template",
    "Var",
    "VariableError",
    "compile_pattern_template",
    "has_variables",
    "match_templates",
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
    """A wildcard template with variables, prepared once at compile time.

    When the pattern is linear (`wildcard.is_linear`: at most one `*` per region), its text is
    translated to regex fragments once and per request only the variable values are escaped
    and spliced in. Otherwise it is resolved per request into a `SegmentGlob`.
    """

    parts: tuple[str | Var, ...]  # str: regex source
    template: Template
    arn: bool
    linear: bool
    # Fast path for the common shape `<literal text>${var}<pattern>` (e.g. `…/${aws:username}/*`):
    # the literal head plus the value must prefix the text, then `tail` must match the rest.
    head: str = ""
    var: Var | None = None
    tail: re.Pattern[str] | None = None

    def superset_source(self) -> str | None:
        """Regex source with every variable widened to `*`, or `None` when that is not safe.

        Whatever a variable resolves to (literal text), a value the resolved pattern matches
        also matches the widened one, so a miss there rejects without resolving anything. Only
        offered when the widened pattern is linear and, for ARNs, every variable sits in the
        resource part (where `*` may cross `:` just as a resolved value may contain one).
        """
        check: list[Chunk] = []
        colons = 0
        for part in self.template:
            if isinstance(part, Var):
                if self.arn and colons < 5:
                    return None
                check.append(Chunk("*"))
            elif isinstance(part, Literal):
                check.append(Chunk(part.text, True))
                colons += part.text.count(":")
            else:
                check.append(Chunk(part))
                colons += part.count(":")
        if not is_linear(check, arn=self.arn):
            return None
        return "".join(p if type(p) is str else ".*" for p in self.parts)

    def values(self, context: Mapping[str, tuple[str, ...]]) -> list[str] | None:
        """The value of each variable in order; `None` when one is null."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                continue
            found = context.get(part.key)
            if found is not None and len(found) == 1:
                out.append(found[0])
            elif part.default is not None:
                out.append(part.default)
            else:
                return None
        return out

    def splice(self, values: list[str]) -> str:
        """The regex source with `values` escaped into the variables' places."""
        it = iter(values)
        return "".join(p if type(p) is str else _escape(next(it)) for p in self.parts)


def compile_pattern_template(template: Template, *, arn: bool) -> PatternTemplate:
    """Prepare a template for per-request matching (see `PatternTemplate`)."""
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
            parts[-1] = parts[-1] + source
        else:
            parts.append(source)
    check = [Chunk(p) if isinstance(p, str) else Chunk(p.text, True) for p in template if not isinstance(p, Var)]
    linear = is_linear(check, arn=arn)
    head, var, tail = _split_head(template, parts, linear=linear)
    return PatternTemplate(tuple(parts), template, arn, linear, head, var, tail)


def _split_head(
    template: Template, parts: list[str | Var], *, linear: bool
) -> tuple[str, Var | None, re.Pattern[str] | None]:
    """Find the fast-path shape: one variable, no wildcard before it, linear overall."""
    variables = [p for p in template if isinstance(p, Var)]
    if not linear or len(variables) != 1 or parts.count(variables[0]) != 1:
        return "", None, None
    head: list[str] = []
    for part in template:
        if isinstance(part, Var):
            break
        text = part.text if isinstance(part, Literal) else part
        if not isinstance(part, Literal) and ("*" in text or "?" in text):
            return "", None, None
        head.append(text)
    rest = parts[parts.index(variables[0]) + 1 :]
    return "".join(head), variables[0], compile_source("".join(p for p in rest if isinstance(p, str)), False)


def match_templates(
    templates: tuple[PatternTemplate, ...], text: str, context: Mapping[str, tuple[str, ...]], *, ignore_case: bool = False
) -> bool:
    """Whether `text` fully matches any of `templates` resolved against `context`; a template
    whose variable is null matches nothing.

    Semantics are those of substituting the values as literal text and then matching (so in
    an ARN a `:` inside a value counts as a component separator); the fast paths below are
    taken only where they give the same answer.
    """
    sources: list[str] = []
    for t in templates:
        values = t.values(context)
        if values is None:
            continue
        if not t.linear or (t.arn and ":" in "".join(values)):
            if _match_resolved(t, text, context, ignore_case):
                return True
        elif t.tail is not None and not ignore_case:
            lead = t.head + values[0]
            if text.startswith(lead) and t.tail.match(text, len(lead)) is not None:
                return True
        else:
            sources.append(t.splice(values))
    return bool(sources) and compile_source("|".join(sources), ignore_case).match(text) is not None


def _match_resolved(t: PatternTemplate, text: str, context: Mapping[str, tuple[str, ...]], ignore_case: bool) -> bool:
    chunks = resolve(t.template, context)
    if chunks is None:
        return False
    if is_linear(chunks, arn=t.arn):
        return compile_source(regex_source(chunks, arn=t.arn), ignore_case).match(text) is not None
    return bool(segment_glob(chunks, t.arn, ignore_case).match(text))
