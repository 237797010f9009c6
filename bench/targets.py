"""Benchmark targets: what to start (Berth, CNCF Distribution, a null sink), on a free loopback
port with a fresh data directory, how to tell it is ready, and how to stop it for good.

A target is a ``TargetSpec``: a kind plus extra command-line arguments, environment and request
headers. Variants are just more specs, e.g. Berth with authorization switched on::

    TargetSpec(name="berth-auth", kind="berth", args=("--config", "auth.toml"),
               prepare=fetch_token_header)   # -> {"Authorization": "Basic ..."}

``prepare`` runs once the target answers its health check and returns headers that every
benchmark request to it carries (the Python client and wrk alike). ``source`` picks the Berth
source tree (``--berth-src`` or the baseline's ``--base-src``); ``metadata="postgresql"`` gives
each start a fresh database on the run's one PostgreSQL cluster (``bench/pgcluster.py``).

Every server runs in its own process group (``start_new_session``), so stopping it stops its
workers too, and the RSS sampler can find all of its processes by group id.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from bench.httpclient import Connection
from bench.pgcluster import BenchPostgres
from bench.procstat import process_stats

log = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
LOOPBACK = "127.0.0.1"
_READY_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0

Headers = Mapping[str, str]


@dataclass(frozen=True)
class TargetSpec:
    """What to run. ``kind`` is one of ``berth``, ``distribution``, ``null``, ``disk``.

    Berth only: ``source`` is ``"berth"`` (``--berth-src``) or ``"base"`` (``--base-src``);
    ``metadata`` is ``"sqlite"`` (in the data dir) or ``"postgresql"``.
    """

    name: str
    kind: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    headers: Headers = field(default_factory=dict)
    prepare: Callable[["RunningTarget"], Headers] | None = None
    quiet: bool = True
    source: str = "berth"
    metadata: str = "sqlite"


# Berth's counterpart of Distribution's ``log.level: error`` + ``accesslog.disabled: true``.
BERTH_QUIET_ENV = {"BERTH_LOG_LEVEL": "error", "BERTH_SERVER__ACCESS_LOG": "false",
                   "BERTH_AUTH__AUDIT_LOG": "false"}
# Distribution runs without auth, so the comparison runs Berth without it too.
_AUTH_OFF = {"BERTH_AUTH__ENABLED": "false"}


def _auth_header(target: "RunningTarget") -> Headers:
    from bench.auth import registry_auth_header

    return registry_auth_header(target)


SPECS: dict[str, TargetSpec] = {
    "berth": TargetSpec(name="berth", kind="berth", env=_AUTH_OFF),
    # Berth's default logging (info level, access log on), auth still off: what logging costs.
    "berth-default": TargetSpec(name="berth-default", kind="berth", env=_AUTH_OFF,
                                quiet=False),
    # Diagnostic: aiohttp's FileResponse without sendfile (read + write in 1 MiB chunks).
    "berth-nosendfile": TargetSpec(name="berth-nosendfile", kind="berth",
                                   env={**_AUTH_OFF, "AIOHTTP_NOSENDFILE": "1"}),
    # Authorization on; every request carries the admin's registry token (docker login).
    "berth-auth": TargetSpec(name="berth-auth", kind="berth",
                             env={"BERTH_AUTH__ENABLED": "true"}, prepare=_auth_header),
    # Issue 9: PostgreSQL metadata (a fresh database per start, schema created by serve).
    "berth-pg": TargetSpec(name="berth-pg", kind="berth", env=_AUTH_OFF,
                           metadata="postgresql"),
    # The baseline: Berth from --base-src (e.g. main before a change), same settings as berth.
    "berth-base": TargetSpec(name="berth-base", kind="berth", env=_AUTH_OFF, source="base"),
    "distribution": TargetSpec(name="distribution", kind="distribution"),
    # A process that reads and discards uploads and serves downloads from the blob file: the
    # ceiling of the benchmark client itself, so the report shows it is not the bottleneck.
    "null": TargetSpec(name="null", kind="null"),
    "null-sendfile": TargetSpec(name="null-sendfile", kind="null", args=("--sendfile",)),
    # No server: the push workloads write the blob file into the data dir with fsync, the
    # ceiling of a durable push on this disk (what `dd conv=fsync` measures).
    "disk": TargetSpec(name="disk", kind="disk"),
}


@dataclass
class RunningTarget:
    spec: TargetSpec
    port: int
    data_dir: str
    log_path: str
    proc: subprocess.Popen | None
    headers: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    # Processes outside the server's group that work for it (berth-pg's PostgreSQL cluster).
    companions: Callable[[], list[int]] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def connect(self, timeout: float = 300.0) -> Connection:
        return Connection(LOOPBACK, self.port, headers=self.headers, timeout=timeout)

    def pids(self) -> list[int]:
        """Every live process in the server's process group (the server and its workers)."""
        return group_pids(self.proc.pid) if self.proc is not None else []

    def cpu_pids(self) -> list[int]:
        """The processes whose CPU time is the target's: its group plus its companions."""
        return self.pids() + (self.companions() if self.companions is not None else [])

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def group_pids(pgid: int) -> list[int]:
    return [pid for pid, fields in process_stats()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z"]


class Launcher:
    """Starts and stops targets under one work directory; stops everything on ``close``,
    the PostgreSQL cluster included."""

    def __init__(self, *, workdir: str, serve_file: str | None = None,
                 berth_src: str = REPO_ROOT, base_src: str | None = None) -> None:
        self.workdir = workdir
        self.berth_src = berth_src
        self.base_src = base_src
        self.serve_file = serve_file
        self.postgres: BenchPostgres | None = None
        self._postgres_error = ""
        self._running: list[RunningTarget] = []
        self._berth_help: dict[str, str] = {}
        self._berth_keys: dict[tuple[str, str], bool] = {}

    def source(self, spec: TargetSpec) -> str:
        """The Berth source tree ``spec`` runs from.

        Raises:
            RuntimeError: a baseline target without ``--base-src``.
        """
        if spec.source == "base":
            if not self.base_src:
                raise RuntimeError(f"{spec.name} needs --base-src")
            return self.base_src
        return self.berth_src

    def start_postgres(self) -> None:
        """Start the run's PostgreSQL cluster. On failure the error is kept and every
        ``metadata="postgresql"`` start fails with it (an ERROR row, not a crash).

        Raises:
            RuntimeError: the cluster did not start (the message is also kept).
        """
        self.postgres = BenchPostgres(tmp_root=self.workdir)
        try:
            self.postgres.start()
        except RuntimeError as exc:
            self.postgres, self._postgres_error = None, str(exc)
            raise

    def start(self, spec: TargetSpec, *, workers: int | None = None) -> RunningTarget:
        """Start ``spec`` on a free port with a fresh data dir; return once it is ready.

        Raises:
            RuntimeError: the process exited or did not become ready in time, or its
                database could not be made.
        """
        port = free_port()
        data_dir = tempfile.mkdtemp(prefix=f"{spec.name}-", dir=self.workdir)
        log_path = data_dir + ".log"
        if spec.kind == "disk":
            target = RunningTarget(spec=spec, port=0, data_dir=data_dir, log_path=log_path,
                                   proc=None)
            self._running.append(target)
            return target
        target = RunningTarget(spec=spec, port=port, data_dir=data_dir, log_path=log_path,
                               proc=None, headers=dict(spec.headers))
        self._running.append(target)
        try:
            env = {**os.environ, **self.target_env(spec), **self._database_env(target)}
            argv, health_path = self._command(spec, port, data_dir, workers)
            with open(log_path, "wb") as log_file:
                cwd = self.source(spec) if spec.kind == "berth" else REPO_ROOT
                target.proc = subprocess.Popen(argv, cwd=cwd, env=env,
                                               stdin=subprocess.DEVNULL, stdout=log_file,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True)
            _wait_ready(target, health_path)
            if spec.prepare is not None:
                try:
                    target.headers.update(spec.prepare(target))
                except Exception as exc:
                    raise RuntimeError(f"{spec.name}: prepare failed: "
                                       f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.stop(target)
            raise
        return target

    def _database_env(self, target: RunningTarget) -> dict[str, str]:
        """For a PostgreSQL target: a fresh database, and the settings pointing Berth at it
        (required, unlike the quiet-logging ones: without them Berth would use SQLite)."""
        spec = target.spec
        if spec.metadata != "postgresql":
            return {}
        if self.postgres is None:
            raise RuntimeError(self._postgres_error or "PostgreSQL cluster not started")
        target.database_url = self.postgres.create_database(spec.name)
        target.companions = self.postgres.pids
        env = {"BERTH_METADATA__URL": target.database_url, "BERTH_METADATA__UPGRADE": "auto"}
        for key, value in env.items():
            if not self.berth_accepts(self.source(spec), key, value):
                raise RuntimeError(f"this Berth ({self.source(spec)}) does not accept {key}")
        return env

    def stop(self, target: RunningTarget) -> None:
        """Stop the server's whole process group, delete its data dir and database."""
        if target.proc is not None:
            _stop_group(target.proc)
        if target in self._running:
            self._running.remove(target)
        if target.database_url and self.postgres is not None:
            self.postgres.drop_database(target.database_url)
        shutil.rmtree(target.data_dir, ignore_errors=True)
        for path in (target.log_path, target.data_dir + ".yml"):
            if os.path.exists(path):
                os.unlink(path)

    def close(self) -> None:
        try:
            for target in list(self._running):
                self.stop(target)
        finally:
            if self.postgres is not None:
                self.postgres.stop()
                self.postgres = None

    def berth_help(self, src: str) -> str:
        """``serve --help`` of the Berth in ``src``; empty when it does not run."""
        if src not in self._berth_help:
            done = subprocess.run([sys.executable, "-m", "registry", "serve", "--help"],
                                  cwd=src, capture_output=True, text=True, timeout=60)
            self._berth_help[src] = done.stdout + done.stderr if done.returncode == 0 else ""
        return self._berth_help[src]

    def target_env(self, spec: TargetSpec) -> dict[str, str]:
        """The spec's environment; for Berth, plus quiet logging, keeping only the
        ``BERTH_*`` settings this Berth's config accepts (the report lists what applied)."""
        if spec.kind != "berth":
            return dict(spec.env)
        wanted = {**(BERTH_QUIET_ENV if spec.quiet else {}), **spec.env}
        src = self.source(spec)
        return {k: v for k, v in wanted.items()
                if not k.startswith("BERTH_") or self.berth_accepts(src, k, v)}

    def berth_accepts(self, src: str, key: str, value: str) -> bool:
        if (src, key) not in self._berth_keys:
            probe = ("import sys; from registry.config import load_config; "
                     "load_config(None, {sys.argv[1]: sys.argv[2]})")
            done = subprocess.run([sys.executable, "-c", probe, key, value],
                                  cwd=src, capture_output=True, text=True, timeout=60)
            self._berth_keys[(src, key)] = done.returncode == 0
            if done.returncode != 0:
                log.warning("berth config in %s does not accept %s; not applied", src, key)
        return self._berth_keys[(src, key)]

    def _command(self, spec: TargetSpec, port: int, data_dir: str,
                 workers: int | None) -> tuple[list[str], str]:
        listen = f"{LOOPBACK}:{port}"
        if spec.kind == "berth":
            argv = [sys.executable, "-m", "registry", "serve", "--data", data_dir,
                    "--listen", listen]
            if workers is not None:
                argv += ["--workers", str(workers)]
            return argv + list(spec.args), "/healthz"
        if spec.kind == "distribution":
            config = data_dir + ".yml"
            with open(config, "w") as handle:
                handle.write(distribution_config(data_dir, listen))
            return [DISTRIBUTION_BINARY, "serve", config, *spec.args], "/v2/"
        if spec.kind == "null":
            argv = [sys.executable, os.path.join(REPO_ROOT, "bench", "nullsink.py"),
                    "--port", str(port)]
            if self.serve_file:
                argv += ["--serve-file", self.serve_file]
            return argv + list(spec.args), "/v2/"
        raise ValueError(f"unknown target kind {spec.kind!r}")


def distribution_config(root: str, listen: str) -> str:
    """Distribution 2.8 with filesystem storage, delete enabled, no auth and quiet logs.

    The in-memory blob descriptor cache is on, as in the upstream image's and Debian's shipped
    config: the reference is measured in its usual configuration, not a handicapped one.
    Upload purging is off so no background walk runs during a measurement.
    """
    return f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {listen}
"""


def _wait_ready(target: RunningTarget, path: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.proc.returncode}:\n"
                               f"{target.log_tail()}")
        try:
            with Connection(LOOPBACK, target.port, headers=target.headers, timeout=5) as conn:
                status = conn.request("GET", path).status
            if status == 200:
                return
            last_error = f"status {status}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.05)
    raise RuntimeError(f"{target.name} not ready after {_READY_TIMEOUT}s ({last_error}):\n"
                       f"{target.log_tail()}")


def _stop_group(proc: subprocess.Popen) -> None:
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, _STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_pids(pgid):
                return
            time.sleep(0.05)
        if proc.poll() is None or group_pids(pgid):
            log.warning("target did not stop on %s", sig.name)
    proc.wait(timeout=5)
