"""Running the real client tools (docker, skopeo) with bounded time and readable failures."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Mapping, Sequence

INSTALL_HINT = (
    "scripts/test.sh installs the Debian packages the end-to-end tests need "
    "(docker.io, skopeo, busybox-static, docker-registry) and starts dockerd; run the suite "
    "through it"
)


class ToolMissing(RuntimeError):
    """A required client tool is not installed or not working."""


class ToolFailed(AssertionError):
    """A tool exited non-zero; the message carries the command and its output."""


def require(binary: str) -> str:
    """Return the absolute path of `binary`, or raise ToolMissing with the install hint."""
    path = shutil.which(binary)
    if path is None:
        raise ToolMissing(f"`{binary}` is not installed: {INSTALL_HINT}")
    return path


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 180,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd`, capture stdout/stderr as text, and fail with both when it exits non-zero."""
    try:
        result = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(
            f"timed out after {timeout}s: {' '.join(cmd)}\n"
            f"stdout:\n{exc.stdout}\nstderr:\n{exc.stderr}"
        ) from None
    if check and result.returncode != 0:
        raise ToolFailed(
            f"exit {result.returncode}: {' '.join(cmd)}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


class Docker:
    """The docker CLI against the local engine; the legacy builder (no buildx needed)."""

    # The Debian engine (20.10) has no BuildKit frontend installed by default; the classic
    # builder handles FROM scratch + COPY without any network.
    ENV = {"DOCKER_BUILDKIT": "0", "DOCKER_CLI_HINTS": "false"}

    def __init__(self) -> None:
        self.binary = require("docker")
        info = run([self.binary, "info", "--format", "{{.ServerVersion}}"], check=False,
                   timeout=30)
        if info.returncode != 0:
            raise ToolMissing(
                f"the docker engine does not answer (`docker info`: {info.stderr.strip()}); "
                f"{INSTALL_HINT}"
            )
        self.server_version = info.stdout.strip()

    def __call__(self, *args: str, timeout: float = 180, check: bool = True):
        return run([self.binary, *args], timeout=timeout, env=self.ENV, check=check)


class Skopeo:
    def __init__(self) -> None:
        self.binary = require("skopeo")

    def __call__(self, *args: str, timeout: float = 180, check: bool = True):
        # --insecure-policy: no dependency on /etc/containers/policy.json being present.
        return run([self.binary, "--insecure-policy", *args], timeout=timeout, check=check)


def static_busybox(path: str = "/bin/busybox") -> str:
    """Return `path` if it is a statically linked ELF (busybox-static), else raise ToolMissing.

    A dynamically linked busybox (Debian's `busybox` package) cannot run in a FROM scratch
    image, and the container would fail with an unhelpful "no such file or directory".
    """
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            if header[:4] != b"\x7fELF":
                raise ToolMissing(f"{path} is not an ELF binary: {INSTALL_HINT}")
            is64, order = header[4] == 2, "<" if header[5] == 1 else ">"
            fmt = order + ("Q" if is64 else "I")
            phoff = struct.unpack_from(fmt, header, 0x20 if is64 else 0x1C)[0]
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36 if is64 else 0x2A)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except FileNotFoundError:
        raise ToolMissing(f"{path} is missing (package busybox-static): {INSTALL_HINT}") from None
    pt_interp = 3
    for i in range(phnum):
        if struct.unpack_from(order + "I", table, i * phentsize)[0] == pt_interp:
            raise ToolMissing(
                f"{path} is dynamically linked; the tests need busybox-static: {INSTALL_HINT}"
            )
    return path
