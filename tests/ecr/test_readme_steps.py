"""The README's steps, run as written against a real server.

- `AWS_ENDPOINT_URL_ECR` replaces `--endpoint-url` for the installed aws CLI and boto3.
- The second-account block (`berth iam create-user --account …`, `put-user-policy`,
  `create-access-key`) is taken from README.md and run by bash in the directory holding
  `berth-data`, exactly as a user pastes it; the key it prints then works in that account, on
  the ECR API and on /v2/ under the account's host name. (Only the /etc/hosts line and docker
  are left to the reader: a test must not edit the machine's name resolution.)
- The README points to nothing outside the repository.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import pytest
import requests

from tests.support.metadata import cli_env
from tests.support.server import REPO_ROOT, BerthServer

README = (REPO_ROOT / "README.md").read_text()
ACCOUNT = "111111111111"


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)


def json_documents(text: str) -> list[dict]:
    decoder, found, at = json.JSONDecoder(), [], 0
    while True:
        start = text.find("{", at)
        if start < 0:
            return found
        document, at = decoder.raw_decode(text, start)
        found.append(document)


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory):
    """`berth serve` with its data in <cwd>/berth-data, the README's default."""
    work = tmp_path_factory.mktemp("readme")
    server = BerthServer(work / "srv", extra_args=["--data", str(work / "berth-data")])
    server.start()
    yield server, work
    server.stop()


def aws_env(work, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AWS_")}
    env.update({"AWS_SHARED_CREDENTIALS_FILE": str(work / "berth-data" / "credentials"),
                "AWS_CONFIG_FILE": os.devnull, **extra})
    return env


def test_aws_endpoint_url_ecr_replaces_endpoint_url(readme_server):
    server, work = readme_server
    env = aws_env(work, AWS_ENDPOINT_URL_ECR=server.url)
    created = subprocess.run(["aws", "ecr", "create-repository", "--repository-name",
                              "tools/busybox"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["repository"]["repositoryUri"] == \
        f"{server.host}/tools/busybox"
    password = subprocess.run(["aws", "ecr", "get-login-password"], env=env,
                              capture_output=True, text=True, timeout=120, check=True)
    basic = base64.b64encode(f"AWS:{password.stdout.strip()}".encode()).decode()
    assert requests.get(server.url + "/v2/", headers={"Authorization": f"Basic {basic}"},
                        timeout=10).status_code == 200
    listed = subprocess.run(
        [sys.executable, "-c", "import boto3, json; print(json.dumps([r['repositoryName'] for "
         "r in boto3.client('ecr', region_name='us-east-1').describe_repositories()"
         "['repositories']]))"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "tools/busybox" in json.loads(listed.stdout)


def test_second_account_steps_work_as_written(readme_server):
    server, work = readme_server
    [block] = [b for b in sh_blocks(README) if f"berth iam create-user --account {ACCOUNT}" in b]
    script = f'berth() {{ "{sys.executable}" -m registry "$@"; }}\nset -euo pipefail\n{block}'
    ran = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True,
                         timeout=180, env={**cli_env(work / "berth-data"),
                                           "PYTHONPATH": str(REPO_ROOT)})
    assert ran.returncode == 0, ran.stderr
    documents = json_documents(ran.stdout)
    assert documents[0]["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"
    key = documents[-1]["AccessKey"]

    # The key, as the README's next block exports it: the ECR API acts in its account.
    env = aws_env(work, AWS_ACCESS_KEY_ID=key["AccessKeyId"],
                  AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"], AWS_DEFAULT_REGION="us-east-1",
                  AWS_ENDPOINT_URL_ECR=server.url)
    created = subprocess.run(["aws", "ecr", "create-repository", "--repository-name", "app"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    repository = json.loads(created.stdout)["repository"]
    assert repository["registryId"] == ACCOUNT
    assert repository["repositoryUri"] == f"{ACCOUNT}.localhost:{server.port}/app"
    password = subprocess.run(["aws", "ecr", "get-login-password"], env=env,
                              capture_output=True, text=True, timeout=120, check=True)
    # docker would send this to 111111111111.localhost:PORT once /etc/hosts names it.
    basic = base64.b64encode(f"AWS:{password.stdout.strip()}".encode()).decode()
    catalog = requests.get(server.url + "/v2/_catalog", timeout=10, headers={
        "Authorization": f"Basic {basic}", "Host": f"{ACCOUNT}.localhost:{server.port}"})
    assert catalog.status_code == 200 and "app" in catalog.json()["repositories"]


def test_readme_points_only_inside_the_repository():
    links = re.findall(r"\]\(([^)]+)\)", README)
    assert links, "the README links its architecture document"
    for link in links:
        assert not link.startswith(("../", "/")), link
        if not link.startswith(("http://", "https://", "#")):
            assert (REPO_ROOT / link.split("#")[0]).is_file(), link
    assert "../" not in README and "shared/DESIGN" not in README
    assert (REPO_ROOT / "docs" / "architecture.md").is_file()
