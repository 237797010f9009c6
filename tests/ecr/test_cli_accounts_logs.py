"""The aws CLI, ECR-style account addressing, file modes and what the logs may contain."""

from __future__ import annotations

import base64
import json
import os
import stat

import requests

ACCOUNT_B = "222222222222"
OWN_ACCOUNT_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
    {"Effect": "Allow", "Action": "ecr:*",
     "Resource": f"arn:aws:ecr:*:{ACCOUNT_B}:repository/*"}]}


def test_aws_cli_repository_lifecycle(auth_server, name):
    created = json.loads(auth_server.aws("ecr", "create-repository", "--repository-name", name,
                                         "--image-tag-mutability", "IMMUTABLE").stdout)
    assert created["repository"]["imageTagMutability"] == "IMMUTABLE"
    described = json.loads(auth_server.aws("ecr", "describe-repositories",
                                           "--repository-names", name).stdout)
    assert described["repositories"][0]["repositoryName"] == name
    assert isinstance(described["repositories"][0]["createdAt"], (int, float, str))
    listed = json.loads(auth_server.aws("ecr", "list-images", "--repository-name", name).stdout)
    assert listed["imageIds"] == []
    failed = auth_server.aws("ecr", "describe-repositories", "--repository-names",
                             f"{name}-absent", check=False)
    assert failed.returncode != 0
    assert "RepositoryNotFoundException" in failed.stderr
    bad = auth_server.aws("ecr", "create-repository", "--repository-name", "Bad_Name",
                          check=False)
    assert "InvalidParameterException" in bad.stderr
    assert "failed to satisfy constraint" in bad.stderr
    deleted = json.loads(auth_server.aws("ecr", "delete-repository", "--repository-name",
                                         name).stdout)
    assert deleted["repository"]["repositoryName"] == name


def test_aws_cli_login_password_is_a_token(auth_server):
    password = auth_server.aws("ecr", "get-login-password").stdout.strip()
    response = requests.get(auth_server.url + "/v2/", timeout=10, headers={
        "Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()})
    assert response.status_code == 200


def _host_hook(host: str):
    def set_host(request, **_):
        request.headers["Host"] = host
    return set_host


def test_account_addressed_by_host(auth_server, name):
    creds = auth_server.make_user(policy=OWN_ACCOUNT_POLICY, account=ACCOUNT_B)
    port = auth_server.server.port
    account_host = f"{ACCOUNT_B}.localhost:{port}"
    plain = auth_server.client(creds)
    repo = plain.create_repository(repositoryName=name)["repository"]
    assert repo["registryId"] == ACCOUNT_B
    assert repo["repositoryUri"] == f"{account_host}/{name}"
    # A client that reaches Berth as <account>.localhost sees its own host echoed back.
    hooked = auth_server.client(creds)
    hooked.meta.events.register("before-sign.ecr.*", _host_hook(account_host))
    assert hooked.describe_repositories(repositoryNames=[name])["repositories"][0][
        "repositoryUri"] == f"{account_host}/{name}"
    data = hooked.get_authorization_token()["authorizationData"][0]
    assert data["proxyEndpoint"] == f"http://{account_host}"
    password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)[1]
    basic = {"Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()}
    in_b = requests.get(auth_server.url + "/v2/_catalog", timeout=10,
                        headers={**basic, "Host": account_host}).json()["repositories"]
    assert name in in_b
    default = requests.get(auth_server.url + "/v2/_catalog", timeout=10, headers=basic)
    # The default account's registry holds no such repository (and B may not list it).
    assert default.status_code == 403 or name not in default.json()["repositories"]


def test_secret_files_are_private(auth_server):
    for path in (auth_server.server.data_dir / "credentials",
                 auth_server.server.data_dir / "master.key"):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600, (path, oct(mode))
    text = (auth_server.server.data_dir / "credentials").read_text()
    assert text.startswith("[default]\n")
    assert "aws_access_key_id = " in text and "region = us-east-1" in text


def test_audit_log_and_no_secrets_in_logs(auth_server, name):
    ecr = auth_server.client()
    ecr.create_repository(repositoryName=name)
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    reader = auth_server.make_user(policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": "*"}]})
    denied = auth_server.client(reader)
    try:
        denied.delete_repository(repositoryName=name)
    except Exception:
        pass
    requests.get(auth_server.url + f"/v2/{name}/tags/list", timeout=10, headers={
        "Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()})
    log = auth_server.server.log()
    audit = [json.loads(line) for line in log.splitlines()
             if line.startswith("{") and '"registry.audit"' in line]
    created = [e for e in audit if e.get("message") == "request"
               and "ecr:CreateRepository" in e.get("actions", [])
               and any(name in r for r in e.get("resources", []))]
    assert created and created[0]["principal"].endswith(":user/admin")
    assert created[0]["decision"] == "allowed" and created[0]["request_id"]
    denial = [e for e in audit if e.get("message") == "denied"
              and e.get("action") == "ecr:DeleteRepository"]
    assert denial and denial[0]["decision"] == "implicitDeny"
    assert denial[0]["principal"].startswith("arn:aws:iam::000000000000:user/")
    assert denial[0]["source_ip"] == "127.0.0.1"
    for secret in (auth_server.admin.secret, reader.secret, password, token):
        assert secret not in log
    assert "Authorization" not in log and "Basic " not in log
    master = (auth_server.server.data_dir / "master.key").read_bytes()
    assert master.hex() not in log and base64.b64encode(master).decode() not in log
