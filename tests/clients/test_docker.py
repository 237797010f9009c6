"""The real docker engine pushes to, pulls from and runs images out of a live Berth.

Docker treats registries on 127.0.0.0/8 as insecure, so plain HTTP works without daemon config.
The engine runs with `--bridge=none`, hence `docker run --network none`.
"""

from __future__ import annotations

import re

import pytest

from tests.support.images import write_docker_context
from tests.support.oci_client import OciClient, expect

pytestmark = pytest.mark.clients


def pushed_layers(output: str) -> dict[str, str]:
    """`docker push` progress lines -> {short layer id: final status}."""
    statuses: dict[str, str] = {}
    for line in output.splitlines():
        match = re.match(r"^([0-9a-f]{12}): (.+)$", line.strip())
        if match:
            statuses[match.group(1)] = match.group(2).strip()
    return statuses


def pushed_digest(output: str, tag: str) -> str:
    match = re.search(rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: \d+$",
                      output, re.MULTILINE)
    assert match, f"no digest line for {tag} in docker push output:\n{output}"
    return match.group(1)


@pytest.fixture
def image_name(berth, repo, docker):
    name = f"{berth.host}/{repo}"
    yield name
    # Remove every local tag we made so the engine's vfs store does not grow across runs.
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout
    ours = [ref for ref in listed.split() if ref.startswith(f"{berth.host}/")]
    if ours:
        docker("rmi", "--force", *ours, check=False)


def test_build_push_pull_run_then_push_shared_layers(
    berth, docker, busybox, tmp_path, image_name
):
    context = write_docker_context(
        tmp_path / "context", busybox=busybox, message="hello from berth"
    )
    v1 = f"{image_name}:v1"
    docker("build", "--quiet", "--tag", v1, str(context))

    push_v1 = docker("push", v1).stdout
    first = pushed_layers(push_v1)
    assert len(first) == 2, f"expected two layers in the push:\n{push_v1}"
    assert set(first.values()) == {"Pushed"}, push_v1
    digest_v1 = pushed_digest(push_v1, "v1")

    # The registry serves exactly what docker pushed.
    repo = image_name.split("/", 1)[1]
    manifest = expect(OciClient(berth.url).get_manifest(repo, "v1"), 200)
    assert manifest.headers["Docker-Content-Digest"] == digest_v1

    docker("rmi", v1)
    assert docker("image", "inspect", v1, check=False).returncode != 0, "image still local"

    pull = docker("pull", v1).stdout
    assert f"Digest: {digest_v1}" in pull, pull
    run = docker("run", "--rm", "--network", "none", v1, "/bin/busybox", "echo", "hello")
    assert run.stdout == "hello\n"
    default_cmd = docker("run", "--rm", "--network", "none", v1)
    assert default_cmd.stdout == "hello from berth\n"

    # A second tag of the same image: every layer is already in the repository.
    v2 = f"{image_name}:v2"
    docker("tag", v1, v2)
    push_v2 = docker("push", v2).stdout
    second = pushed_layers(push_v2)
    assert second.keys() == first.keys(), push_v2
    assert set(second.values()) == {"Layer already exists"}, push_v2
    assert pushed_digest(push_v2, "v2") == digest_v1


def test_push_to_second_repository_mounts_or_uploads(berth, docker, busybox, tmp_path, image_name):
    """Pushing the same image to another repository makes docker try a cross-repository mount.

    The registry may mount (201, "Mounted from <source>") or decline with a normal upload
    session (202; Berth declines unless the ECR BLOB_MOUNTING setting is ENABLED), and docker
    then uploads ("Pushed"). Either way the second repository serves the whole image.
    """
    context = write_docker_context(tmp_path / "context", busybox=busybox, message="mounted")
    source = f"{image_name}/source:v1"
    docker("build", "--quiet", "--tag", source, str(context))
    docker("push", source)

    target = f"{image_name}/target:v1"
    docker("tag", source, target)
    output = docker("push", target).stdout
    statuses = pushed_layers(output)
    source_repo = source.split("/", 1)[1].rsplit(":", 1)[0]
    assert len(statuses) == 2, output
    assert set(statuses.values()) <= {f"Mounted from {source_repo}", "Pushed"}, output

    docker("rmi", source, target)
    docker("pull", target)
    run = docker("run", "--rm", "--network", "none", target, "/bin/busybox", "echo", "hello")
    assert run.stdout == "hello\n"
