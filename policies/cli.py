"""The `policy` command: `validate FILE...` and `simulate …` (the only module here doing I/O).

`register(subparsers)` adds the command to an argparse CLI (the `berth` command hooks it in and
calls `args.func(args)`, exiting with its return value); `main(argv)` runs it standalone, as
`python -m policies policy validate f.json`.

Exit codes:
- validate: 0 when every file is a valid policy, 1 when any is invalid or unreadable;
- simulate: 0 when the request is allowed, 1 when it is denied, 2 when the input is unusable
  (unreadable or invalid policy file, bad principal, malformed `--context`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Callable, TextIO

from policies.decision import Decision
from policies.evaluate import evaluate
from policies.jsondoc import loads
from policies.model import Policy, PolicyError, PolicyKind, Problem
from policies.parse import parse_policy, validate
from policies.request import Principal, Request

__all__ = ["main", "print_decision", "read_simulation_inputs", "register", "run_simulate",
           "run_validate"]

_AUTO = "auto"


def register(subparsers: Any, *,
             simulate_hook: Callable[[argparse.ArgumentParser], None] | None = None
             ) -> argparse.ArgumentParser:
    """Add the `policy` command (with `validate` and `simulate`) to an argparse sub-parser set.

    `simulate_hook`, when given, is called with the `simulate` parser once it is complete, so a
    host CLI can add options and replace `func` (the `berth` command adds `--data`/`--config`
    to simulate against a live registry, which this package must not know about).
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "policy", help="validate policy documents and simulate authorisation decisions",
        description="Work with IAM-style policy documents.",
    )
    commands = parser.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "validate", help="validate policy files", description="Validate policy documents; print each problem with its element path."
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="policy document (JSON)")
    check.add_argument(
        "--kind", choices=(_AUTO, PolicyKind.IDENTITY.value, PolicyKind.RESOURCE.value), default=_AUTO,
        help="policy type; auto (default): resource policy if any statement has Principal or NotPrincipal",
    )
    check.set_defaults(func=run_validate)

    sim = commands.add_parser(
        "simulate", help="explain whether a request is allowed",
        description="Evaluate one request against identity and resource policies and explain the decision. "
        "Exit status: 0 allowed, 1 denied, 2 unusable input.",
    )
    sim.add_argument("--principal", required=True, metavar="ARN", help="caller: user, role, assumed-role, account id or 'anonymous'")
    sim.add_argument("--action", required=True, metavar="ACTION", help="e.g. ecr:BatchGetImage")
    sim.add_argument("--resource", required=True, metavar="ARN", help="resource ARN, or '*'")
    sim.add_argument("--policy", action="append", default=[], metavar="FILE", help="an identity policy of the principal (repeatable)")
    sim.add_argument("--resource-policy", action="append", default=[], metavar="FILE", help="the resource's policy (repeatable: repository and registry policy)")
    sim.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="a context key; repeat a key to give it several values")
    sim.add_argument("--json", action="store_true", help="print the decision as JSON")
    sim.set_defaults(func=run_simulate)
    if simulate_hook is not None:
        simulate_hook(sim)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `policy …` standalone; returns the exit code."""
    parser = argparse.ArgumentParser(prog="berth", description="Berth policy tools")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _guess_kind(text: str) -> PolicyKind:
    try:
        doc = loads(text)
    except ValueError:  # validate() then reports why
        return PolicyKind.IDENTITY
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    items = statements if isinstance(statements, list) else [statements]
    named = any(isinstance(s, dict) and ("Principal" in s or "NotPrincipal" in s) for s in items)
    return PolicyKind.RESOURCE if named else PolicyKind.IDENTITY


def run_validate(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """`policy validate`: one line per problem (`FILE: PATH: MESSAGE`), or `FILE: valid …`."""
    out = out or sys.stdout
    failed = False
    for path in args.files:
        try:
            text = _read(path)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: cannot read: {exc}", file=out)
            failed = True
            continue
        kind = _guess_kind(text) if args.kind == _AUTO else PolicyKind(args.kind)
        problems = validate(text, kind=kind, name=path)
        for problem in problems:
            print(f"{path}: {problem}", file=out)
        if not problems:
            print(f"{path}: valid {kind.value} policy", file=out)
        failed = failed or bool(problems)
    return 1 if failed else 0


def _load(paths: list[str], kind: PolicyKind, err: TextIO) -> list[Policy] | None:
    policies, ok = [], True
    for path in paths:
        try:
            policies.append(parse_policy(_read(path), kind=kind, name=path))
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: cannot read: {exc}", file=err)
            ok = False
        except PolicyError as exc:
            for problem in exc.problems:
                print(f"{path}: {problem}", file=err)
            ok = False
    return policies if ok else None


def _context(pairs: list[str]) -> dict[str, list[str]] | Problem:
    context: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            return Problem("--context", f"expected KEY=VALUE, got {pair!r}")
        context[key.strip()].append(value)
    return dict(context)


def read_simulation_inputs(args: argparse.Namespace, err: TextIO
                           ) -> tuple[dict[str, list[str]], list[Policy], list[Policy]] | None:
    """The `--context` keys and the `--policy` / `--resource-policy` documents of a simulate
    command line; None, after printing every problem to `err`, when any is unusable."""
    context = _context(args.context)
    if isinstance(context, Problem):
        print(context, file=err)
        return None
    identity = _load(args.policy, PolicyKind.IDENTITY, err)
    resource = _load(args.resource_policy, PolicyKind.RESOURCE, err)
    if identity is None or resource is None:
        return None
    return context, identity, resource


def print_decision(decision: Decision, args: argparse.Namespace, out: TextIO) -> int:
    """Print the decision (JSON with `--json`, else explained) and return the exit status."""
    if args.json:
        print(json.dumps(decision.to_json(), indent=2), file=out)
    else:
        _explain(decision, out)
    return 0 if decision.allowed else 1


def run_simulate(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`policy simulate`: evaluate one request and explain the decision."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        principal = Principal.from_arn(args.principal)
    except ValueError as exc:
        print(f"--principal: {exc}", file=err)
        return 2
    inputs = read_simulation_inputs(args, err)
    if inputs is None:
        return 2
    context, identity, resource = inputs
    # The CLI is the one place that reads the clock; --context aws:CurrentTime=… overrides it.
    request = Request(principal, args.action, args.resource, context=context, now=datetime.now(UTC))
    return print_decision(evaluate(request, identity, resource), args, out)


def _explain(decision: Any, out: TextIO) -> None:
    print(f"decision: {decision.decision}", file=out)
    print(f"reason: {decision.reason.value}", file=out)
    if not decision.allowed:
        print(f"message: {decision.denial_message()}", file=out)
    if decision.matched_statements:
        print("matched statements:", file=out)
        for statement in decision.matched_statements:
            print(f"  {statement}", file=out)
    else:
        print("matched statements: none", file=out)
    for error in decision.errors:
        print(f"error: {error}", file=out)


if __name__ == "__main__":
    sys.exit(main())
