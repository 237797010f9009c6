"""Starting and stopping benchmark targets: a free loopback port and a fresh data dir per
start, the run's PostgreSQL and Ceph RGW clusters (a database or bucket per start), readiness
checks, and stopping every process group for good. The targets themselves are specs in
``bench/targets.py``; multi-node targets are started by ``bench/nodes.py``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from bench.httpclient import Connection
from bench.pgcluster import BenchPostgres
from bench.rgw import BenchRGW
from bench.targets import (BERTH_QUIET_ENV, DISTRIBUTION_BINARY, LOOPBACK, REPO_ROOT,
                           RunningTarget, TargetSpec, free_port, group_pids)

log = logging.getLogger(__name__)

_READY_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0


class Launcher:
    """Starts and stops targets under one work directory; stops everything on ``close``,
    the PostgreSQL cluster and the Ceph RGW cluster included."""

    def __init__(self, *, workdir: str, serve_file: str | None = None,
                 berth_src: str = REPO_ROOT, base_src: str | None = None) -> None:
        self.workdir = workdir
        self.berth_src = berth_src
        self.base_src = base_src
        self.serve_file = serve_file
        self.postgres: BenchPostgres | None = None
        self._postgres_error = ""
        self.rgw: BenchRGW | None = None
        self._rgw_error = ""
        self._credentials_file = ""
        self._profile = ""
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

    def start_rgw(self, *, memstore_bytes: int, lock_timeout: float) -> None:
        """Start the run's Ceph RGW cluster and write the credentials file Berth reads. On
        failure the error is kept and every ``storage="s3"`` start fails with it.

        Raises:
            RuntimeError: the cluster did not start (the message is also kept).
        """
        self.rgw = BenchRGW(tmp_root=self.workdir, memstore_bytes=memstore_bytes,
                            lock_timeout=lock_timeout)
        try:
            self.rgw.start()
            self._credentials_file = os.path.join(self.workdir, "aws-credentials")
            self._profile = self.rgw.write_credentials_file(self._credentials_file)
        except (RuntimeError, OSError) as exc:
            self.rgw.stop()
            self.rgw, self._rgw_error = None, str(exc)
            raise RuntimeError(str(exc)) from exc

    def start(self, spec: TargetSpec, *, workers: int | None = None) -> RunningTarget:
        """Start ``spec`` on a free port with a fresh data dir; return once it is ready.

        Raises:
            RuntimeError: the process exited or did not become ready in time, or its
                database or bucket could not be made.
        """
        port = free_port()
        data_dir = tempfile.mkdtemp(prefix=f"{spec.name}-", dir=self.workdir)
        target = RunningTarget(spec=spec, port=port, data_dir=data_dir,
                               log_path=data_dir + ".log", proc=None,
                               headers=dict(spec.headers))
        self._running.append(target)
        try:
            storage_env = self._storage_env(target)
            if spec.kind in ("disk", "s3"):
                target.port = 0
                return target
            env = {**os.environ, **self.target_env(spec), **self._database_env(target),
                   **storage_env}
            if spec.nodes:
                from bench.nodes import start_nodes

                start_nodes(self, target, env=env, workers=workers)
            else:
                argv, health_path = self.command(spec, port, data_dir, workers)
                self.spawn(target, argv, env=env)
                wait_ready(target, port, health_path)
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

    def spawn(self, target: RunningTarget, argv: list[str], *, env: dict[str, str],
              name: str = "") -> subprocess.Popen:
        """Start one process of ``target`` in a session (so a process group) of its own,
        output appended to the target's log. ``name``: a component of the CPU split (a
        node, nginx)."""
        cwd = self.source(target.spec) if target.spec.kind == "berth" else REPO_ROOT
        with open(target.log_path, "ab") as log_file:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log_file, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        target.procs.append(proc)
        if target.proc is None:
            target.proc = proc
        if name:
            target.components[name] = proc.pid
        return proc

    def _storage_env(self, target: RunningTarget) -> dict[str, str]:
        """For an S3 target: a fresh bucket on the run's RGW (deleted at stop) and, for
        Berth, the settings pointing it there (required: without them it would keep its
        blobs on disk). Credentials come from a 0600 file and a named profile, as an
        operator gives them; the keys are in no variable and on no command line."""
        spec = target.spec
        if spec.storage != "s3":
            return {}
        if self.rgw is None:
            raise RuntimeError(self._rgw_error or "Ceph RGW cluster not started")
        target.s3 = self.rgw
        target.bucket = self.rgw.new_bucket(spec.name)
        target.companions["ceph"] = self.rgw.pids
        if spec.kind != "berth":
            return {}
        env = {"BERTH_STORAGE__BACKEND": "s3", "BERTH_STORAGE__BUCKET": target.bucket,
               "BERTH_STORAGE__ENDPOINT_URL": self.rgw.endpoint_url,
               "BERTH_STORAGE__REGION": self.rgw.region,
               "BERTH_STORAGE__PREFIX": "registry/",
               "BERTH_STORAGE__PROFILE": self._profile,
               "BERTH_STORAGE__CREDENTIALS_FILE": self._credentials_file}
        self.check_config(self.source(spec), env)
        return env

    def check_config(self, src: str, env: dict[str, str]) -> None:
        """Make sure this Berth's config takes every one of ``env`` (an unknown ``BERTH_*``
        key is only a warning to Berth, so it is an error here).

        Raises:
            RuntimeError: a key is unknown or a value invalid.
        """
        probe = ("import json, sys\nfrom registry.config import load_config\n"
                 "def warn(message):\n    print(message, file=sys.stderr); sys.exit(3)\n"
                 "load_config(None, json.loads(sys.argv[1]), warn=warn)")
        done = subprocess.run([sys.executable, "-c", probe, json.dumps(env)], cwd=src,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["(no output)"]
            raise RuntimeError(f"this Berth ({src}) does not accept {sorted(env)}: {lines[-1]}")

    def _database_env(self, target: RunningTarget) -> dict[str, str]:
        """For a PostgreSQL target: a fresh database, and the settings pointing Berth at it
        (required, unlike the quiet-logging ones: without them Berth would use SQLite)."""
        spec = target.spec
        if spec.metadata != "postgresql":
            return {}
        if self.postgres is None:
            raise RuntimeError(self._postgres_error or "PostgreSQL cluster not started")
        target.database_url = self.postgres.create_database(spec.name)
        target.companions["postgresql"] = self.postgres.pids
        env = {"BERTH_METADATA__URL": target.database_url, "BERTH_METADATA__UPGRADE": "auto"}
        for key, value in env.items():
            if not self.berth_accepts(self.source(spec), key, value):
                raise RuntimeError(f"this Berth ({self.source(spec)}) does not accept {key}")
        return env

    def stop(self, target: RunningTarget) -> None:
        """Stop the server's whole process group, delete its data dir, database and bucket."""
        for proc in reversed(target.procs):  # nginx before the nodes behind it
            _stop_group(proc)
        if target in self._running:
            self._running.remove(target)
        if target.database_url and self.postgres is not None:
            self.postgres.drop_database(target.database_url)
        if target.bucket and target.s3 is not None:
            try:
                target.s3.drop_bucket(target.bucket)
            except Exception as exc:  # noqa: BLE001 - the cluster goes at exit anyway
                log.warning("bucket %s not deleted: %s", target.bucket, exc)
        for path in (target.data_dir, target.data_dir + ".nginx"):
            shutil.rmtree(path, ignore_errors=True)
        for path in (target.log_path, target.data_dir + ".yml"):
            if os.path.exists(path):
                os.unlink(path)

    def close(self) -> None:
        try:
            for target in list(self._running):
                self.stop(target)
        finally:
            try:
                if self.postgres is not None:
                    self.postgres.stop()
                    self.postgres = None
            finally:
                if self.rgw is not None:
                    self.rgw.stop()
                    self.rgw = None

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

    def command(self, spec: TargetSpec, port: int, data_dir: str,
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


def wait_ready(target: RunningTarget, port: int, path: str) -> None:
    """Wait until ``GET path`` on ``port`` answers 200 while every process of ``target``
    lives.

    Raises:
        RuntimeError: a process exited, or no 200 within the timeout (log tail attached).
    """
    deadline = time.monotonic() + _READY_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        for proc in target.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{target.name} exited with {proc.returncode}:\n"
                                   f"{target.log_tail()}")
        try:
            with Connection(LOOPBACK, port, headers=target.headers, timeout=5) as conn:
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
