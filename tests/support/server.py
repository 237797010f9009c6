"""Registry server processes for end-to-end tests.

`BerthServer` runs `python3 -m registry serve` as a real subprocess on a loopback port, the way
a user runs it, so tests exercise the CLI, the process model and the on-disk layout together.
`DistributionServer` runs CNCF Distribution (`/usr/bin/docker-registry`) behind the same
interface; it is the reference the client tests were validated against and can be selected
with `BERTH_TEST_REGISTRY=distribution` (see tests/conftest.py).

Each server runs in its own process group so `kill9()` takes down every worker at once, the way
a power cut or the OOM killer would, and `restart()` brings it back on the same data directory
and port.

Blob store layouts, as each server draws them under its data directory::

    Berth:         blobs/<alg>/<2 hex>/<hex>                          (complete blobs only)
                   uploads/<session id>/...                           (partial data)
    Distribution:  docker/registry/v2/blobs/<alg>/<2 hex>/<hex>/data
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.metadata import URL_ENV, remember_server, server_env, session_database

REPO_ROOT = Path(__file__).resolve().parents[2]

_HEX_LENGTHS = {"sha256": 64, "sha512": 128}


class ServerStartError(RuntimeError):
    """The server process exited or did not become healthy in time; carries its log tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class StoredBlob:
    """A regular file found under a server's blob store.

    `digest` is the digest the file's path claims (None when the path does not fit the layout,
    e.g. a temporary file); `path` is the file itself.
    """

    path: Path
    digest: str | None


class LoopbackAddress:
    """``host`` and ``url`` of something listening on 127.0.0.1:``port``."""

    port: int

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the registry host as docker/skopeo/oras spell it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


class RegistryProcess(LoopbackAddress):
    """A registry server subprocess with a data directory, a port and a log file.

    Subclasses supply `command()`, `health_path` and the blob store layout.
    """

    health_path = "/v2/"
    name = "registry"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        workers: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.workers = workers  # worker processes; servers without the notion ignore it
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self.starts = 0

    # -- lifecycle -------------------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> "RegistryProcess":
        """Start the process and wait until `health_path` answers 200.

        Raises:
            ServerStartError: the process exited, or was not healthy within startup_timeout.
        """
        if self.running:
            raise RuntimeError(f"{self.name} already running (pid {self.pid})")
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"\n=== start #{self.starts + 1}: {self.command()}\n".encode())
        self._log_file.flush()
        env = {**os.environ, **self.env}
        self._proc = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,  # own process group: kill9() reaches every worker
        )
        self.starts += 1
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = self.url + self.health_path
        last_error = "no attempt"
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with {code} before becoming healthy\n"
                    f"command: {self.command()}\n--- log tail ---\n{self.log_tail()}"
                )
            try:
                response = requests.get(url, timeout=2)
                if response.status_code == 200:
                    return
                last_error = f"GET {self.health_path} -> {response.status_code}"
            except requests.RequestException as exc:
                last_error = f"{type(exc).__name__}"
            time.sleep(0.05)
        self.kill9()
        raise ServerStartError(
            f"{self.name} not healthy after {self.startup_timeout}s ({last_error})\n"
            f"command: {self.command()}\n--- log tail ---\n{self.log_tail()}"
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, wait, SIGKILL whatever is left; return the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._proc.wait(timeout=timeout)
        # Workers of a multi-process server may outlive a master that exited on SIGTERM.
        self._signal_group(signal.SIGKILL)
        return self._finish()

    def kill9(self) -> None:
        """SIGKILL the whole process group at once (a crash: no shutdown code runs)."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self._proc.wait(timeout=10)
        self._finish()

    def restart(self) -> "RegistryProcess":
        """Stop (if running) and start again on the same data directory and port."""
        if self.running:
            self.stop()
        return self.start()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self) -> int | None:
        code = self._proc.returncode if self._proc else None
        self._wait_group_gone()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def _wait_group_gone(self, timeout: float = 10.0) -> None:
        """Wait until no process of the group is left, so the port is free for restart()."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self._proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def __enter__(self) -> "RegistryProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- logs ------------------------------------------------------------------------------

    def log(self) -> str:
        """Everything the server wrote to stdout/stderr, across restarts."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # -- blob store ------------------------------------------------------------------------

    @property
    def blob_root(self) -> Path:
        raise NotImplementedError

    def blob_path(self, digest: str) -> Path:
        """Where a complete blob with `digest` lives in this server's layout."""
        raise NotImplementedError

    def stored_blobs(self) -> Iterator[StoredBlob]:
        """Every regular file under the blob store, with the digest its path claims."""
        if not self.blob_root.exists():
            return
        for path in sorted(self.blob_root.rglob("*")):
            if path.is_file() or path.is_symlink():
                yield StoredBlob(path=path, digest=self._digest_of_path(path))

    def _digest_of_path(self, path: Path) -> str | None:
        raise NotImplementedError


class BerthServer(RegistryProcess):
    """`python3 -m registry serve --data DIR --listen 127.0.0.1:PORT [extra args]`."""

    health_path = "/healthz"
    name = "berth"

    def __init__(self, workdir: Path, **kwargs) -> None:
        super().__init__(workdir, **kwargs)
        # BERTH_TEST_METADATA=postgresql: every Berth server gets a database of its own on
        # the session's cluster (kept across restarts), unless the test chose one.
        if URL_ENV not in self.env:
            self.env.update(server_env(session_database("berth")))
        args = list(self.extra_args)
        data = args[args.index("--data") + 1] if "--data" in args[:-1] else self.data_dir
        remember_server(data, self.env)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "registry", "serve", "--data", str(self.data_dir)]
        cmd += ["--listen", self.host]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        return cmd + list(self.extra_args)

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "blobs"

    def blob_path(self, digest: str) -> Path:
        alg, hex_ = digest.split(":", 1)
        return self.blob_root / alg / hex_[:2] / hex_

    def _digest_of_path(self, path: Path) -> str | None:
        parts = path.relative_to(self.blob_root).parts
        if len(parts) != 3:
            return None
        alg, prefix, hex_ = parts
        if not _is_hex(alg, hex_) or hex_[:2] != prefix:
            return None
        return f"{alg}:{hex_}"


class DistributionServer(RegistryProcess):
    """CNCF Distribution 2.8 (`/usr/bin/docker-registry serve CONFIG`), the reference peer."""

    name = "distribution"
    binary = "/usr/bin/docker-registry"

    def command(self) -> list[str]:
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.data_dir}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: {self.host}\n  secret: berth-tests-not-secret\n"
        )
        return [self.binary, "serve", str(config)]

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "docker" / "registry" / "v2" / "blobs"

    def blob_path(self, digest: str) -> Path:
        alg, hex_ = digest.split(":", 1)
        return self.blob_root / alg / hex_[:2] / hex_ / "data"

    def _digest_of_path(self, path: Path) -> str | None:
        parts = path.relative_to(self.blob_root).parts
        if len(parts) != 4 or parts[3] != "data":
            return None
        alg, prefix, hex_, _ = parts
        if not _is_hex(alg, hex_) or hex_[:2] != prefix:
            return None
        return f"{alg}:{hex_}"


def _is_hex(alg: str, hex_: str) -> bool:
    length = _HEX_LENGTHS.get(alg)
    return length is not None and re.fullmatch(f"[0-9a-f]{{{length}}}", hex_) is not None


def server_class(kind: str) -> type[RegistryProcess]:
    """Map `berth` / `distribution` (BERTH_TEST_REGISTRY) to a server class."""
    try:
        return {"berth": BerthServer, "distribution": DistributionServer}[kind]
    except KeyError:
        raise ValueError(f"unknown registry kind {kind!r}; use berth or distribution") from None


def distribution_available() -> bool:
    return shutil.which(DistributionServer.binary) is not None
