"""docker login with ECR tokens, and who may push and pull (issue 3, items 5, 6 and 8).

Every docker call uses its own DOCKER_CONFIG so that logins never leak between tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.images import write_docker_context


@pytest.fixture(scope="module")
def image_context(tmp_path_factory, busybox):
    return write_docker_context(tmp_path_factory.mktemp("ctx"), busybox=busybox,
                                message="hello from berth")


class DockerAs:
    """The docker CLI with a private config directory (one login per instance)."""

    def __init__(self, tmp_path, docker) -> None:
        self.config = tmp_path / f"docker-{time.monotonic_ns()}"
        self.config.mkdir()
        self.docker = docker

    def __call__(self, *args: str, check: bool = True, input: str | None = None):
        env = {**os.environ, "DOCKER_CONFIG": str(self.config), "DOCKER_BUILDKIT": "0"}
        result = subprocess.run([self.docker.binary, *args], capture_output=True, text=True,
                                env=env, input=input, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
        return result


def login(auth_server, docker_as: DockerAs, creds=None, *, check=True):
    password = auth_server.aws("ecr", "get-login-password", creds=creds, check=check)
    if password.returncode != 0:
        return password
    return docker_as("login", "--username", "AWS", "--password-stdin",
                     auth_server.server.host, input=password.stdout, check=check)


def build(docker_as: DockerAs, context, ref: str) -> None:
    docker_as("build", "-q", "-t", ref, str(context))


PUSH_PULL = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
    {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                   "ecr:BatchCheckLayerAvailability"], "Resource": "*"}]}
NO_TOKEN = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
     "Resource": "*"}]}


def test_get_login_password_docker_login_push_pull_run(auth_server, docker, tmp_path,
                                                       image_context, name):
    admin = DockerAs(tmp_path, docker)
    login(auth_server, admin)
    ref = f"{auth_server.server.host}/{name}:v1"
    build(admin, image_context, ref)
    admin("push", ref)
    admin("rmi", ref)
    admin("pull", ref)
    run = admin("run", "--rm", "--network", "none", ref)
    assert run.stdout.strip() == "hello from berth"
    admin("rmi", ref)


def test_unauthenticated_requests_are_challenged(auth_server, docker, tmp_path, name):
    anonymous = DockerAs(tmp_path, docker)
    result = anonymous("pull", f"{auth_server.server.host}/{name}:v1", check=False)
    assert result.returncode != 0
    assert "no basic auth credentials" in result.stderr or "unauthorized" in result.stderr.lower()


def test_read_only_user_pulls_but_cannot_push(auth_server, docker, tmp_path, image_context,
                                              name):
    admin = DockerAs(tmp_path, docker)
    login(auth_server, admin)
    ref = f"{auth_server.server.host}/{name}:v1"
    build(admin, image_context, ref)
    admin("push", ref)
    reader_creds = auth_server.make_user(policy=PUSH_PULL)
    reader = DockerAs(tmp_path, docker)
    login(auth_server, reader, reader_creds)
    reader("pull", ref)
    denied = reader("push", ref.replace(":v1", ":v2"), check=False)
    # docker may push layers it cannot mount... it must stop at the first denied action.
    reader("tag", ref, ref.replace(":v1", ":v2"))
    denied = reader("push", ref.replace(":v1", ":v2"), check=False)
    assert denied.returncode != 0
    assert "denied" in denied.stderr
    assert "ecr:" in denied.stderr and name in denied.stderr


def test_user_without_get_authorization_token_cannot_log_in(auth_server, docker, tmp_path):
    creds = auth_server.make_user(policy=NO_TOKEN)
    result = auth_server.aws("ecr", "get-login-password", creds=creds, check=False)
    assert result.returncode != 0
    assert "AccessDeniedException" in result.stderr
    assert "ecr:GetAuthorizationToken" in result.stderr
    assert "because no identity-based policy allows the ecr:GetAuthorizationToken action" \
        in result.stderr


def test_repository_policy_explicit_deny_beats_admin_allow(auth_server, docker, tmp_path,
                                                           image_context, name):
    admin = DockerAs(tmp_path, docker)
    login(auth_server, admin)
    ref = f"{auth_server.server.host}/{name}:v1"
    build(admin, image_context, ref)
    admin("push", ref)
    ecr = auth_server.client()
    ecr.set_repository_policy(repositoryName=name, policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "DenyPull", "Effect": "Deny", "Principal": "*",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}))
    admin("rmi", ref)
    denied = admin("pull", ref, check=False)
    assert denied.returncode != 0
    assert "denied" in denied.stderr
    with pytest.raises(Exception) as excinfo:
        ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    assert "with an explicit deny in a resource-based policy" in str(excinfo.value)
    ecr.delete_repository_policy(repositoryName=name)
    admin("pull", ref)


def test_anonymous_pull_only_with_principal_star(auth_server, docker, tmp_path, image_context,
                                                 name):
    """An HTTP client without credentials pulls manifest and layers only from a repository
    whose policy grants ``Principal: "*"``. (docker itself refuses to pull anonymously from a
    registry that advertises Basic auth, on ECR as here, so the pull is done over HTTP.)"""
    admin = DockerAs(tmp_path, docker)
    login(auth_server, admin)
    ref = f"{auth_server.server.host}/{name}:v1"
    build(admin, image_context, ref)
    admin("push", ref)
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                        "application/vnd.oci.image.manifest.v1+json"}
    url = f"{auth_server.url}/v2/{name}/manifests/v1"
    refused = requests.get(url, headers=accept, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    auth_server.client().set_repository_policy(repositoryName=name, policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "Public", "Effect": "Allow", "Principal": "*",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}))
    manifest = requests.get(url, headers=accept, timeout=10)
    assert manifest.status_code == 200
    for layer in manifest.json()["layers"]:
        blob = requests.get(f"{auth_server.url}/v2/{name}/blobs/{layer['digest']}", timeout=10)
        assert blob.status_code == 200
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == layer["digest"]
    # Pushing stays closed to anonymous callers.
    push = requests.post(f"{auth_server.url}/v2/{name}/blobs/uploads/", timeout=10)
    assert push.status_code == 401
    other = requests.get(f"{auth_server.url}/v2/{name}-private/manifests/v1", timeout=10)
    assert other.status_code == 401


def test_cross_account_pull_needs_both_policies(auth_server, docker, tmp_path, image_context,
                                                name):
    admin = DockerAs(tmp_path, docker)
    login(auth_server, admin)
    ref = f"{auth_server.server.host}/{name}:v1"
    build(admin, image_context, ref)
    admin("push", ref)
    account_b = "111111111111"
    creds = auth_server.make_user(policy=PUSH_PULL, account=account_b)
    ecr_b = auth_server.client(creds)
    pull_b = DockerAs(tmp_path, docker)
    login(auth_server, pull_b, creds)
    # Identity policy alone: A's repository has no policy naming B.
    assert pull_b("pull", ref, check=False).returncode != 0
    with pytest.raises(Exception) as excinfo:
        ecr_b.batch_get_image(registryId="000000000000", repositoryName=name,
                              imageIds=[{"imageTag": "v1"}])
    assert "because no resource-based policy allows" in str(excinfo.value)
    auth_server.client().set_repository_policy(repositoryName=name, policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "AccountB", "Effect": "Allow", "Principal": {"AWS": account_b},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                       "ecr:BatchCheckLayerAvailability"]}]}))
    pull_b("pull", ref)
    got = ecr_b.batch_get_image(registryId="000000000000", repositoryName=name,
                                imageIds=[{"imageTag": "v1"}])
    assert len(got["images"]) == 1
    # Both sides are needed: a B user with no identity policy is still refused.
    bare = auth_server.make_user(policy=None, account=account_b)
    with pytest.raises(Exception) as excinfo:
        auth_server.client(bare).batch_get_image(registryId="000000000000",
                                                 repositoryName=name,
                                                 imageIds=[{"imageTag": "v1"}])
    assert "AccessDenied" in str(excinfo.value)


def test_immutable_tag_cannot_move_with_docker(auth_server, docker, tmp_path, image_context,
                                               name):
    auth_server.client().create_repository(repositoryName=name,
                                           imageTagMutability="IMMUTABLE")
    admin = DockerAs(tmp_path, docker)
    login(auth_server, admin)
    ref = f"{auth_server.server.host}/{name}:v1"
    build(admin, image_context, ref)
    admin("push", ref)
    admin("push", ref)  # the same image again is fine on the registry API
    other = write_docker_context(tmp_path / "other", busybox=Path("/bin/busybox"),
                                 message="a different image")
    build(admin, other, ref)
    refused = admin("push", ref, check=False)
    assert refused.returncode != 0
    assert "tag invalid" in refused.stderr
    assert "cannot be overwritten because the repository is immutable" in refused.stderr
