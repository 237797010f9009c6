"""The typed, immutable model of a policy document, and the parse-error types.

Everything here is a frozen dataclass or a tuple: a parsed `Policy` can be shared freely between
requests and threads. The model is normalised — single strings become 1-tuples, `"*"` as a
principal becomes `{"AWS": ["*"]}`, JSON numbers and booleans in condition values become
strings — so `parse(render(p)) == p` (tests/policies pin it with hypothesis).

The compiled form used by the evaluator hangs off `Policy.compiled`; it is built once (the parser
builds it eagerly) and never takes part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policies.compile import CompiledPolicy

__all__ = [
    "VERSION_2008",
    "VERSION_2012",
    "Condition",
    "Effect",
    "Patterns",
    "Policy",
    "PolicyError",
    "PolicyKind",
    "PrincipalBlock",
    "Problem",
    "Statement",
]

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"


class PolicyKind(StrEnum):
    """Identity policies are attached to a principal; resource policies to a repository or
    registry and must name principals."""

    IDENTITY = "identity"
    RESOURCE = "resource"


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: the element path (`Statement[1].Condition.StringEqualz`, or `""`
    for the whole document) and an AWS-style message."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyError(ValueError):
    """A document was rejected; `problems` lists every problem found (never empty)."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], *, name: str = "") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.name = name
        prefix = f"{name}: " if name else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Patterns:
    """`Action`/`NotAction` or `Resource`/`NotResource`: the values and whether negated."""

    values: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class PrincipalBlock:
    """`Principal`/`NotPrincipal`: `(type, values)` pairs in document order, e.g.
    `(("AWS", ("123456789012",)), ("Service", ("ecs.amazonaws.com",)))`."""

    entries: tuple[tuple[str, tuple[str, ...]], ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Condition:
    """One `operator: {key: values}` entry; `operator` is exactly as written
    (`ForAnyValue:StringLikeIfExists`), `key` as written (matching lower-cases it)."""

    operator: str
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement; `index` is its 0-based position in the policy's `Statement` list."""

    index: int
    effect: Effect
    action: Patterns
    sid: str | None = None
    resource: Patterns | None = None
    principal: PrincipalBlock | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A validated policy document. `version` is `None` when the document has no `Version`
    (2008-10-17 semantics); `name` identifies the policy in decisions and messages."""

    name: str
    kind: PolicyKind
    statements: tuple[Statement, ...]
    version: str | None = VERSION_2012
    id: str | None = None

    @property
    def variables_enabled(self) -> bool:
        """Policy variables are substituted only in 2012-10-17 documents (§6)."""
        return self.version == VERSION_2012

    @property
    def compiled(self) -> CompiledPolicy:
        """The matcher form the evaluator uses; built on first access and kept.

        Stored in the instance `__dict__` (outside the dataclass fields, so out of `__eq__`
        and `__hash__`). Not `functools.cached_property`: on Python 3.11 it takes a lock on
        every access, and this runs once per policy per request.
        """
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            from policies.compile import compile_policy  # the compiler imports this module

            compiled = compile_policy(self)
            object.__setattr__(self, "_compiled", compiled)
        return compiled
