"""Berth's container image, built once per session, and containers run from it.

``berth_image`` runs scripts/base-image.sh (which builds the Debian bookworm base with
mmdebstrap and imports it, or finds it already imported: the base is kept across sessions),
then ``docker build``s the repository's Dockerfile with its default base, pip pointed at a
loopback wheelhouse and no package index (tests/container/wheelhouse.py): nothing comes from
an image hub or the internet. The image is removed at the end of the session (``docker rmi``
takes its untagged build layers with it); the base is not.

``run_container(env=..., volumes=...)`` starts a container from it with ``--network host``
(the engine has no bridge; ``network="none"`` for one of its own) and a short health
interval, listening on a free loopback port that it sets with ``BERTH_SERVER__LISTEN`` unless
``listen_env=False``; every container is removed, with its anonymous volume, after the test
(or module, for ``berth_container``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.wheelhouse import REPO_ROOT, serve_wheels, wheelhouse
from tests.support.server import LoopbackAddress, free_port
from tests.support.tools import Docker, run

BASE_SCRIPT = REPO_ROOT / "scripts" / "base-image.sh"


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base: str


@dataclass
class Container(LoopbackAddress):
    """A running container of the image; ``port`` is where its Berth listens (host network)."""

    docker: Docker
    name: str
    port: int

    def exec(self, *args: str, check: bool = True):
        return self.docker("exec", self.name, *args, check=check, timeout=60)

    def inspect(self, template: str = "{{json .}}") -> object:
        return json.loads(self.docker("inspect", "--format", template, self.name).stdout)

    def logs(self, tail: str = "all") -> str:
        result = self.docker("logs", "--tail", tail, self.name, check=False)
        return result.stdout + result.stderr

    def wait_healthy(self, timeout: float = 120) -> None:
        """Until Docker's own health check reports ``healthy``; fails at once when the
        container exits or turns ``unhealthy``, with the container's log."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.inspect("{{json .State}}")
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return
            if not state["Running"] or health == "unhealthy" or time.monotonic() > deadline:
                checks = (state.get("Health") or {}).get("Log", [])[-3:]
                raise AssertionError(
                    f"container {self.name}: {state['Status']}, health {health}, exit "
                    f"{state['ExitCode']}\nlast checks: {json.dumps(checks, indent=1)}\n"
                    f"log:\n{self.logs(tail='80')}")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def berth_image(docker) -> Iterator[BuiltImage]:
    base = run([str(BASE_SCRIPT)], timeout=1800).stdout.strip().splitlines()[-1]
    tag = f"berth-test/berth:{uuid.uuid4().hex[:12]}"
    with serve_wheels(wheelhouse()) as wheels:
        # --network host: the engine has no bridge; the only address the build reaches is
        # the wheelhouse on loopback.
        docker("build", "--force-rm", "--network", "host", "--build-arg", "PIP_NO_INDEX=1",
               "--build-arg", f"PIP_FIND_LINKS={wheels}", "--tag", tag, str(REPO_ROOT),
               timeout=1800)
    yield BuiltImage(tag=tag, base=base)
    docker("rmi", tag, check=False, timeout=300)


def _container_factory(docker: Docker, image: BuiltImage
                       ) -> tuple[Callable[..., Container], Callable[[], None]]:
    started: list[Container] = []

    def start(*, env: Mapping[str, str] | None = None, volumes: Sequence[str] = (),
              listen_env: bool = True, port: int | None = None,
              network: str = "host") -> Container:
        port = port or free_port()
        listen = {"BERTH_SERVER__LISTEN": f"127.0.0.1:{port}"} if listen_env else {}
        env = {**listen, **(env or {})}
        name = f"berth-test-{uuid.uuid4().hex[:10]}"
        args = ["run", "--detach", "--name", name, "--network", network,
                "--health-interval", "1s"]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for volume in volumes:
            args += ["--volume", volume]
        docker(*args, image.tag)
        container = Container(docker, name, port)
        started.append(container)
        return container

    def remove_all() -> None:
        for container in started:
            docker("rm", "--force", "--volumes", container.name, check=False)

    return start, remove_all


@pytest.fixture
def run_container(docker, berth_image) -> Iterator[Callable[..., Container]]:
    start, remove_all = _container_factory(docker, berth_image)
    yield start
    remove_all()


@pytest.fixture(scope="module")
def berth_container(docker, berth_image) -> Iterator[Container]:
    """One container with the image's configuration (authorization on), healthy."""
    start, remove_all = _container_factory(docker, berth_image)
    container = start()
    container.wait_healthy()
    yield container
    remove_all()


def dockerfile_base_default(dockerfile: Path = REPO_ROOT / "Dockerfile") -> str:
    match = re.search(r"^ARG BASE=(\S+)$", dockerfile.read_text(), re.MULTILINE)
    assert match, "the Dockerfile declares no ARG BASE=<default>"
    return match.group(1)
