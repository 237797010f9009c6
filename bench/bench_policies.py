"""Benchmark: one policy evaluation against 10 identity policies of 10 statements each.

The statements carry conditions (String, StringLike, IpAddress, Bool, Date, Numeric,
ForAnyValue) and policy variables (`${aws:username}`, `${aws:PrincipalTag/team}`) in Resource
and condition values, and mix Allow and Deny. Each timed call builds a fresh `Request` (as the
registry does per HTTP request) and evaluates it; the policies are parsed once, as the
registry's `PolicyCache` does. Prints the median and p99 per evaluation in microseconds.

Run: python bench/bench_policies.py [--iterations N]
Target (issue 2): median < 50 µs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies import Policy, PolicyKind, Principal, Request, evaluate, parse_policy  # noqa: E402

ACCOUNT = "123456789012"
REPO = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository"


def _statements(i: int) -> list[dict]:
    return [
        {"Sid": f"Pull{i}", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
         "Resource": f"{REPO}/${{aws:username}}/*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": f"team-{i}"}}},
        {"Sid": f"Team{i}", "Effect": "Allow", "Action": "ecr:Batch*",
         "Resource": f"{REPO}/team-{i}/*", "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}},
        {"Sid": f"Tls{i}", "Effect": "Deny", "Action": "ecr:*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": f"Project{i}", "Effect": "Allow", "Action": ["ecr:Describe*", "ecr:List*", "ecr:BatchGetImage"],
         "Resource": f"{REPO}/project-{i}-*", "Condition": {"StringLike": {"aws:PrincipalTag/project": [f"p{i}-*", "shared-*"]}}},
        {"Sid": f"Fence{i}", "Effect": "Deny", "Action": "ecr:*", "NotResource": f"arn:aws:ecr:*:{ACCOUNT}:repository/*",
         "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}}},
        {"Sid": f"Window{i}", "Effect": "Allow", "Action": "ecr:*", "Resource": f"{REPO}/shared-{i}/*",
         "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
                       "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}},
        {"Sid": f"ByTeam{i}", "Effect": "Allow", "Action": "ecr:BatchGetImage",
         "Resource": f"{REPO}/${{aws:PrincipalTag/team}}-{i}/*",
         "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "owner"]}}},
        {"Sid": f"Size{i}", "Effect": "Deny", "Action": ["ecr:PutImage", "ecr:BatchGetImage"], "Resource": f"{REPO}/*",
         "Condition": {"NumericGreaterThan": {"berth:LayerCount": f"{100 + i}"}}},
        {"Sid": f"Tasks{i}", "Effect": "Allow", "Action": "ecs:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:username": "${aws:username}"}}},
        {"Sid": f"Token{i}", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
    ]


def build_policies() -> list[Policy]:
    """Ten parsed identity policies (parsed once, outside the timed loop)."""
    return [
        parse_policy(json.dumps({"Version": "2012-10-17", "Statement": _statements(i)}), kind=PolicyKind.IDENTITY, name=f"policy-{i}")
        for i in range(10)
    ]


def one_evaluation(policies: list[Policy], principal: Principal, now: datetime) -> str:
    request = Request(
        principal,
        "ecr:BatchGetImage",
        f"{REPO}/alice/app",
        context={
            "aws:SourceIp": "10.1.2.3",
            "aws:SecureTransport": "true",
            "aws:TagKeys": ("team", "env"),
            "berth:LayerCount": "12",
        },
        now=now,
    )
    return evaluate(request, policies).decision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args(argv)
    policies = build_policies()
    principal = Principal.from_arn(f"arn:aws:iam::{ACCOUNT}:user/alice", tags={"team": "team-3", "project": "p3-web"})
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    decision = one_evaluation(policies, principal, now)
    for _ in range(1000):  # warm-up: memoised action filters and compiled variable patterns
        one_evaluation(policies, principal, now)
    samples = []
    clock = time.perf_counter_ns
    for _ in range(args.iterations):
        start = clock()
        one_evaluation(policies, principal, now)
        samples.append(clock() - start)
    samples.sort()
    median = statistics.median(samples) / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    print(f"policies: 10 x 10 statements; decision: {decision}")
    print(f"median: {median:.1f} µs per evaluation (p99 {p99:.1f} µs, {args.iterations} iterations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
