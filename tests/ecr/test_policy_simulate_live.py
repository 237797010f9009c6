"""`berth policy simulate --data DIR` answers what the running server decides.

Each case sets up live state (users and their policies, a repository policy, repository tags,
a registry policy) through the real clients, asks `berth policy simulate --data` in a
subprocess as an operator would, and makes the same request with boto3 against the server:
the two must agree, and the simulation names the statement that decided.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.ecr.test_images import push_image

REGION = "us-east-1"
ACCOUNT = "000000000000"
PARTNER = "333333333333"


def repo_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:ecr:{REGION}:{account}:repository/{name}"


def simulate(auth_server, principal: str, action: str, resource: str, *extra: str):
    proc = auth_server.berth("policy", "simulate", "--principal", principal, "--action", action,
                             "--resource", resource, "--json", *extra, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    decision = json.loads(proc.stdout)
    assert (proc.returncode == 0) == (decision["decision"] == "allowed")
    return decision


def live(call) -> str:
    """``allowed`` or the AWS error code of a boto3 call."""
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "allowed"


def statements(decision) -> list[tuple[str, str, str | None, str]]:
    return [(s["policy"], s["policyType"], s["sid"], s["effect"])
            for s in decision["matchedStatements"]]


def user_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def test_admin_put_image_is_allowed_by_the_admin_policy(auth_server, ecr, name):
    ecr.create_repository(repositoryName=name)
    decision = simulate(auth_server, user_arn("admin"), "ecr:PutImage", repo_arn(name))
    assert decision["decision"] == "allowed"
    assert statements(decision) == [("AdministratorAccess", "identity", None, "Allow")]
    assert live(lambda: push_image(ecr, name, "v1", "simulate-admin")) == "allowed"


def test_offline_simulate_without_data_knows_no_policies(name):
    """What `policy simulate` answered for the same question before it could see live state."""
    proc = subprocess.run([sys.executable, "-m", "registry", "policy", "simulate",
                           "--principal", user_arn("admin"), "--action", "ecr:PutImage",
                           "--resource", repo_arn(name)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "decision: implicitDeny" in proc.stdout


def test_repository_policy_deny_is_named(auth_server, ecr, name):
    dev_name = f"dev-{uuid.uuid4().hex[:6]}"
    dev = auth_server.make_user(dev_name, policy={"Version": "2012-10-17", "Statement": [
        {"Sid": "TeamRepos", "Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]})
    ecr.create_repository(repositoryName=name)
    ecr.set_repository_policy(repositoryName=name, policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "NoPushFromDev", "Effect": "Deny", "Principal": {"AWS": user_arn(dev_name)},
             "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload"]}]}))
    client = auth_server.client(dev)

    denied = simulate(auth_server, user_arn(dev_name), "ecr:PutImage", repo_arn(name))
    assert denied["decision"] == "explicitDeny"
    assert statements(denied) == [("repository policy", "resource", "NoPushFromDev", "Deny")]
    assert live(lambda: push_image(client, name, "v1", "simulate-dev")) == \
        "AccessDeniedException"

    listed = simulate(auth_server, user_arn(dev_name), "ecr:ListImages", repo_arn(name))
    assert listed["decision"] == "allowed"
    assert statements(listed) == [("p", "identity", "TeamRepos", "Allow")]
    assert live(lambda: client.list_images(repositoryName=name)) == "allowed"


def test_repository_tags_reach_conditions(auth_server, ecr, name):
    dev_name = f"dev-{uuid.uuid4().hex[:6]}"
    dev = auth_server.make_user(dev_name, policy={"Version": "2012-10-17", "Statement": [
        {"Sid": "All", "Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
        {"Sid": "NotProd", "Effect": "Deny", "Action": "ecr:DescribeImages", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}}]})
    prod, test = f"{name}-prod", f"{name}-test"
    ecr.create_repository(repositoryName=prod, tags=[{"Key": "env", "Value": "prod"}])
    ecr.create_repository(repositoryName=test, tags=[{"Key": "env", "Value": "test"}])
    client = auth_server.client(dev)

    decision = simulate(auth_server, user_arn(dev_name), "ecr:DescribeImages", repo_arn(prod))
    assert decision["decision"] == "explicitDeny"
    assert statements(decision) == [("p", "identity", "NotProd", "Deny")]
    assert live(lambda: client.describe_images(repositoryName=prod)) == "AccessDeniedException"

    decision = simulate(auth_server, user_arn(dev_name), "ecr:DescribeImages", repo_arn(test))
    assert decision["decision"] == "allowed"
    assert statements(decision) == [("p", "identity", "All", "Allow")]
    assert live(lambda: client.describe_images(repositoryName=test)) == "allowed"


def test_cross_account_needs_the_registry_policy(auth_server, ecr, name):
    partner_name = f"partner-{uuid.uuid4().hex[:6]}"
    partner = auth_server.make_user(partner_name, account=PARTNER, policy={
        "Version": "2012-10-17", "Statement": [
            {"Sid": "ReadAnywhere", "Effect": "Allow", "Action": "ecr:DescribeRepositories",
             "Resource": "*"}]})
    ecr.create_repository(repositoryName=name)
    client = auth_server.client(partner)
    who = user_arn(partner_name, PARTNER)

    before = simulate(auth_server, who, "ecr:DescribeRepositories", repo_arn(name))
    assert before["decision"] == "implicitDeny"
    assert live(lambda: client.describe_repositories(registryId=ACCOUNT,
                                                     repositoryNames=[name])) == \
        "AccessDeniedException"

    ecr.put_registry_policy(policyText=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "PartnerReads", "Effect": "Allow", "Principal": {"AWS": who},
         "Action": "ecr:DescribeRepositories", "Resource": repo_arn("*")}]}))
    try:
        after = simulate(auth_server, who, "ecr:DescribeRepositories", repo_arn(name))
        assert after["decision"] == "allowed"
        assert set(statements(after)) == {
            ("p", "identity", "ReadAnywhere", "Allow"),
            ("registry policy", "resource", "PartnerReads", "Allow")}
        # One worker: the server's own write invalidated its memo, so it decides anew.
        assert live(lambda: client.describe_repositories(registryId=ACCOUNT,
                                                         repositoryNames=[name])) == "allowed"
    finally:
        ecr.delete_registry_policy()


def test_extra_policy_files_are_evaluated_on_top(auth_server, ecr, name, tmp_path):
    ecr.create_repository(repositoryName=name)
    deny = tmp_path / "deny.json"
    deny.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "WhatIf", "Effect": "Deny", "Principal": "*", "Action": "ecr:PutImage"}]}))
    decision = simulate(auth_server, user_arn("admin"), "ecr:PutImage", repo_arn(name),
                        "--resource-policy", str(deny))
    assert decision["decision"] == "explicitDeny"
    assert statements(decision) == [(str(deny), "resource", "WhatIf", "Deny")]


@pytest.mark.parametrize("principal,resource,message", [
    ("arn:aws:iam::000000000000:user/nobody-here", "*", "has no user 'nobody-here'"),
    ("arn:aws:iam::000000000000:root", "*", "a user ARN"),
    ("arn:aws:iam::000000000000:user/admin", repo_arn("x").replace(REGION, "eu-west-3"),
     "this registry serves us-east-1"),
])
def test_questions_the_server_never_answers_are_unusable(auth_server, principal, resource,
                                                         message):
    proc = auth_server.berth("policy", "simulate", "--principal", principal, "--action",
                             "ecr:PutImage", "--resource", resource, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
