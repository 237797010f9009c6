"""Strict parsing and validation of policy documents into the `policies.model` types.

Every problem is collected (not just the first), each with the path of the offending element,
e.g. `Statement[1].Condition.StringEqualz: unsupported condition operator`; paths use
`Statement` for a single statement object and `Statement[i]` for list items, and `[i]` after an
element given as a list. Messages reuse IAM's `MalformedPolicyDocument` texts where AWS has one
(iam-policy-evaluation.md §7.2). Nothing fails open: anything not understood is rejected.

Rules by policy kind:

- identity: no `Principal`/`NotPrincipal`, no `Id`; `Resource`/`NotResource` required; `Sid`s
  alphanumeric and unique; ≤ 6,144 non-whitespace characters from TAB, LF, CR, U+0020–U+00FF;
- resource (ECR repository and registry policies): `Principal` or `NotPrincipal` required,
  `NotPrincipal` only with `Deny`; `Resource` optional (absent = the resource itself); any
  `Sid`s; ≤ 10,240 characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from policies.actions import DEFAULT_CATALOG
from policies.arn import PARTITIONS, parse_arn, parse_principal_ref
from policies.jsondoc import is_text, loads
from policies.model import (
    VERSION_2008,
    VERSION_2012,
    Condition,
    Effect,
    Patterns,
    Policy,
    PolicyError,
    PolicyKind,
    PrincipalBlock,
    Problem,
    Statement,
)
from policies.parse_conditions import parse_conditions
from policies.variables import VariableError, parse_template
from policies.wildcard import compile_patterns, has_wildcard

__all__ = ["MAX_SIZE", "parse_policy", "validate"]

MAX_SIZE = {PolicyKind.IDENTITY: 6144, PolicyKind.RESOURCE: 10240}
_TOP_KEYS = ("Version", "Id", "Statement")
_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)
_PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")
_BAD_CHAR = re.compile(r"[^\t\n\r\x20-\xff]")
_SID = re.compile(r"[A-Za-z0-9]*")
_VENDOR = re.compile(r"[A-Za-z0-9-]+")
_ACTION_NAME = re.compile(r"[A-Za-z0-9*?]+")
_CANONICAL_USER = re.compile(r"[0-9a-f]{64}")
_WS = " \t\r\n"


def parse_policy(
    document: str | bytes | Mapping[str, Any],
    *,
    kind: PolicyKind,
    name: str = "policy",
    max_size: int | None = None,
    catalog: Mapping[str, frozenset[str]] = DEFAULT_CATALOG,
) -> Policy:
    """Parse and validate a policy document (JSON text, UTF-8 bytes or an already-decoded
    mapping) into a compiled, immutable `Policy` named `name`.

    `max_size` overrides the kind's character limit; `catalog` maps vendors to the action
    names validated for them (other vendors are checked for syntax only).

    Raises:
        PolicyError: the document is invalid; `.problems` lists every problem found.
    """
    policy, problems = _run(document, kind=kind, name=name, max_size=max_size, catalog=catalog)
    if problems or policy is None:
        raise PolicyError(problems or [Problem("", "Syntax errors in policy.")], name=name)
    _ = policy.compiled  # compile now, so the request path never does
    return policy


def validate(
    document: str | bytes | Mapping[str, Any],
    *,
    kind: PolicyKind,
    name: str = "policy",
    max_size: int | None = None,
    catalog: Mapping[str, frozenset[str]] = DEFAULT_CATALOG,
) -> list[Problem]:
    """Return every problem in the document; an empty list means it is valid."""
    try:
        parse_policy(document, kind=kind, name=name, max_size=max_size, catalog=catalog)
    except PolicyError as exc:
        return list(exc.problems)
    return []


def _run(
    document: str | bytes | Mapping[str, Any],
    *,
    kind: PolicyKind,
    name: str,
    max_size: int | None,
    catalog: Mapping[str, frozenset[str]],
) -> tuple[Policy | None, list[Problem]]:
    problems: list[Problem] = []
    if isinstance(document, bytes):
        try:
            document = document.decode("utf-8")
        except UnicodeDecodeError:
            return None, [Problem("", "Syntax errors in policy. The document is not UTF-8 text.")]
    if isinstance(document, str):
        text = document
        try:
            obj = loads(text)
        except ValueError as exc:
            return None, [Problem("", f"Syntax errors in policy. {exc}")]
    elif isinstance(document, Mapping):
        obj = document
        text = json.dumps(document, ensure_ascii=False, default=str)
    else:
        raise TypeError(f"a policy document is JSON text, bytes or a mapping, not {type(document).__name__}")
    limit = MAX_SIZE[kind] if max_size is None else max_size
    size = len(text) - sum(text.count(c) for c in _WS)
    if size > limit:
        problems.append(Problem("", f"Policy document exceeds the maximum size of {limit} characters (whitespace excluded): {size}."))
    if kind is PolicyKind.IDENTITY and (bad := _BAD_CHAR.search(text)) is not None:
        problems.append(Problem("", f"Policy document contains an invalid character U+{ord(bad.group()):04X}."))
    checker = _Checker(kind, catalog)
    policy = checker.document(obj, name)
    return policy, problems + checker.problems


class _Checker:
    """Walks one document, collecting problems and building the model."""

    def __init__(self, kind: PolicyKind, catalog: Mapping[str, frozenset[str]]) -> None:
        self.kind = kind
        self.catalog = catalog
        self.problems: list[Problem] = []
        self.variables = False

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def keys(self, obj: Mapping[str, Any], path: str, allowed: frozenset[str] | tuple[str, ...], what: str) -> None:
        """Report duplicate and unknown keys of `obj`."""
        for key in getattr(obj, "duplicates", ()):
            self.problem(_join(path, key), f"Syntax errors in policy. Duplicate key {key!r}.")
        for key in obj:
            if key not in allowed:
                self.problem(_join(path, key), f"unknown {what} element")

    def document(self, obj: Any, name: str) -> Policy | None:
        if not isinstance(obj, Mapping):
            self.problem("", "Syntax errors in policy. The policy document must be a JSON object.")
            return None
        self.keys(obj, "", _TOP_KEYS, "policy")
        version = obj.get("Version")
        if "Version" in obj and (not is_text(version) or version not in (VERSION_2012, VERSION_2008)):
            self.problem("Version", f'invalid Version {version!r}; must be "{VERSION_2012}" or "{VERSION_2008}"')
        self.variables = version == VERSION_2012
        policy_id = obj.get("Id")
        if "Id" in obj:
            if self.kind is PolicyKind.IDENTITY:
                self.problem("Id", "Id is not allowed in an identity-based policy")
            elif not is_text(policy_id):
                self.problem("Id", "must be a string")
        raw = obj.get("Statement")
        if isinstance(raw, Mapping):
            items = [("Statement", raw)]
        elif isinstance(raw, list) and raw:
            items = [(f"Statement[{i}]", s) for i, s in enumerate(raw)]
        else:
            message = "missing required element" if "Statement" not in obj else "must be an object or a non-empty list of objects"
            self.problem("Statement", message)
            items = []
        statements = [self.statement(s, path, i) for i, (path, s) in enumerate(items)]
        if self.kind is PolicyKind.IDENTITY:
            self.unique_sids(items)
        if self.problems or any(s is None for s in statements):
            return None
        return Policy(name, self.kind, tuple(s for s in statements if s is not None), version, policy_id)

    def unique_sids(self, items: list[tuple[str, Any]]) -> None:
        seen: set[str] = set()
        for path, st in items:
            sid = st.get("Sid") if isinstance(st, Mapping) else None
            if is_text(sid) and sid:
                if sid in seen:
                    self.problem(f"{path}.Sid", "Statement IDs (SID) in a single policy must be unique.")
                seen.add(sid)

    def statement(self, st: Any, path: str, index: int) -> Statement | None:
        if not isinstance(st, Mapping):
            self.problem(path, "a statement must be an object")
            return None
        before = len(self.problems)
        self.keys(st, path, _STATEMENT_KEYS, "statement")
        sid = st.get("Sid")
        if "Sid" in st:
            if not is_text(sid):
                self.problem(f"{path}.Sid", "must be a string")
            elif self.kind is PolicyKind.IDENTITY and not _SID.fullmatch(sid):
                self.problem(f"{path}.Sid", "must contain only ASCII letters and digits")
        effect = st.get("Effect")
        if "Effect" not in st:
            self.problem(path, "Policy statement must contain an Effect.")
        elif effect not in ("Allow", "Deny") or not is_text(effect):
            self.problem(f"{path}.Effect", f'invalid Effect {effect!r}; must be "Allow" or "Deny" (case-sensitive)')
        principal = self.principal_element(st, path, effect)
        action = self.patterns(st, path, "Action", "Policy statement must contain actions.", self.action_value)
        required = "Policy statement must contain resources." if self.kind is PolicyKind.IDENTITY else None
        resource = self.patterns(st, path, "Resource", required, self.resource_value)
        conditions: tuple[Condition, ...] = ()
        if "Condition" in st:
            conditions, found = parse_conditions(st["Condition"], f"{path}.Condition", variables=self.variables)
            self.problems.extend(found)
        if len(self.problems) > before or action is None:
            return None
        return Statement(index, Effect(str(effect)), action, sid, resource, principal, conditions)

    def principal_element(self, st: Mapping[str, Any], path: str, effect: Any) -> PrincipalBlock | None:
        has_p, has_np = "Principal" in st, "NotPrincipal" in st
        key = "NotPrincipal" if has_np and not has_p else "Principal"
        if self.kind is PolicyKind.IDENTITY:
            if has_p or has_np:
                self.problem(f"{path}.{key}", "Policy document should not specify a principal.")
            return None
        if has_p and has_np:
            self.problem(path, "Principal and NotPrincipal cannot both be specified")
            return None
        if not has_p and not has_np:
            self.problem(path, "Missing required field Principal")
            return None
        if has_np and effect == "Allow":
            self.problem(f"{path}.NotPrincipal", 'NotPrincipal is only supported with "Effect": "Deny"')
        return self.principal(st[key], f"{path}.{key}", negated=has_np)

    def principal(self, value: Any, path: str, *, negated: bool) -> PrincipalBlock | None:
        if value == "*" and is_text(value):
            return PrincipalBlock((("AWS", ("*",)),), negated)
        if not isinstance(value, Mapping) or not value:
            self.problem(path, 'must be "*" or an object such as {"AWS": ["123456789012"]}')
            return None
        self.keys(value, path, _PRINCIPAL_TYPES, "principal")
        entries = []
        for ptype, raw in value.items():
            if ptype not in _PRINCIPAL_TYPES:
                continue
            items = self.strings(raw, f"{path}.{ptype}")
            for item_path, text in items:
                if not _valid_principal(ptype, text):
                    self.problem(item_path, f"Invalid principal in policy: {text!r}")
            entries.append((ptype, tuple(t for _, t in items)))
        return PrincipalBlock(tuple(entries), negated)

    def strings(self, value: Any, path: str) -> list[tuple[str, str]]:
        """A string or a non-empty list of strings, as (path, value) pairs."""
        if is_text(value):
            return [(path, value)]
        if not isinstance(value, list) or not value:
            self.problem(path, "must be a string or a non-empty list of strings")
            return []
        out = []
        for i, item in enumerate(value):
            if is_text(item):
                out.append((f"{path}[{i}]", item))
            else:
                self.problem(f"{path}[{i}]", "must be a string")
        return out

    def patterns(
        self, st: Mapping[str, Any], path: str, element: str, required: str | None, check: Callable[[str, str], None]
    ) -> Patterns | None:
        negative = f"Not{element}"
        has_pos, has_neg = element in st, negative in st
        if has_pos and has_neg:
            self.problem(path, f"{element} and {negative} cannot both be specified")
            return None
        if not has_pos and not has_neg:
            if required is not None:
                self.problem(path, required)
            return None
        key = element if has_pos else negative
        items = self.strings(st[key], f"{path}.{key}")
        for item_path, text in items:
            check(item_path, text)
        return Patterns(tuple(t for _, t in items), negated=has_neg)

    def action_value(self, path: str, action: str) -> None:
        if action == "*":
            return
        vendor, sep, name = action.partition(":")
        if not sep:
            self.problem(path, "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")
        elif ":" in name:
            self.problem(path, "Actions/Condition can contain only one colon.")
        elif not _VENDOR.fullmatch(vendor):
            self.problem(path, f"Vendor {vendor} is not valid")
        elif not _ACTION_NAME.fullmatch(name):
            self.problem(path, f"Action {action} is not valid")
        elif (known := self.catalog.get(vendor.lower())) is not None:
            rx = compile_patterns([name], ignore_case=True)
            if rx is None or not any(rx.match(a) for a in known):
                self.problem(path, f"Action {action} does not match any {vendor.lower()} action")

    def resource_value(self, path: str, resource: str) -> None:
        if resource == "*":
            return
        arn = parse_arn(resource)
        if arn is None:
            self.problem(path, f'Resource {resource} must be in ARN format or "*".')
        elif not arn.service or has_wildcard(arn.service) or "${" in arn.service:
            self.problem(path, "Resource vendor must be fully qualified and cannot contain regexes.")
        elif arn.partition not in PARTITIONS and not has_wildcard(arn.partition):
            self.problem(path, f'Partition "{arn.partition}" is not valid for resource "{resource}".')
        elif arn.service == "iam" and arn.region:
            self.problem(path, f"IAM resource {resource} cannot contain region information.")
        elif self.variables and "${" in resource:
            if "${" in resource[: len(resource) - len(arn.resource)]:
                self.problem(path, "policy variables are only allowed in the resource part of an ARN (after the 5th colon)")
                return
            try:
                parse_template(resource, enabled=True)
            except VariableError as exc:
                self.problem(path, str(exc))


def _valid_principal(ptype: str, text: str) -> bool:
    if ptype == "AWS":
        return parse_principal_ref(text) is not None
    if ptype == "Service":
        return text != "*" and parse_principal_ref(text, service=True) is not None
    if ptype == "CanonicalUser":
        return _CANONICAL_USER.fullmatch(text) is not None
    return bool(text) and not has_wildcard(text)  # Federated: a provider name or ARN


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key

