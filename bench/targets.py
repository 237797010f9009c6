"""Benchmark targets: what to start (Berth, CNCF Distribution, a null sink, the S3 ceiling,
Berth nodes behind nginx) and what a started one looks like; ``bench/launcher.py`` starts
them on a free loopback port with a fresh data directory and stops them for good.

A target is a ``TargetSpec``: a kind plus extra command-line arguments, environment and request
headers. Variants are just more specs, e.g. Berth with authorization switched on::

    TargetSpec(name="berth-auth", kind="berth", args=("--config", "auth.toml"),
               prepare=fetch_token_header)   # -> {"Authorization": "Basic ..."}

``prepare`` runs once the target answers its health check and returns headers that every
benchmark request to it carries (the Python client and wrk alike). ``source`` picks the Berth
source tree (``--berth-src`` or the baseline's ``--base-src``); ``metadata="postgresql"`` gives
each start a fresh database on the run's one PostgreSQL cluster (``bench/pgcluster.py``);
``storage="s3"`` a fresh bucket on the run's one Ceph RGW (``bench/rgw.py``), deleted when
the target stops. ``nodes`` runs several Berth nodes, each pinned to a core, behind nginx
(``bench/nodes.py``); the target's port is then nginx's.

Every process started for a target leads a process group of its own (``start_new_session``),
so stopping it stops its workers too, and the RSS sampler can find all of its processes by
group id (a multi-node target has one group per node and one for nginx).
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Mapping

from bench.httpclient import Connection
from bench.procstat import descendants, process_stats
from bench.rgw import BenchRGW

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
LOOPBACK = "127.0.0.1"

Headers = Mapping[str, str]


@dataclass(frozen=True)
class TargetSpec:
    """What to run. ``kind`` is one of ``berth``, ``distribution``, ``null``, ``disk``,
    ``s3`` (no server: boto3 straight to the run's RGW, the S3 ceiling).

    Berth only: ``source`` is ``"berth"`` (``--berth-src``) or ``"base"`` (``--base-src``);
    ``metadata`` is ``"sqlite"`` (in the data dir) or ``"postgresql"``; ``storage`` is
    ``"filesystem"`` (in the data dir) or ``"s3"`` (a fresh bucket on the run's RGW);
    ``workers`` overrides the workload's ``--workers``; ``nodes`` lists one core per node:
    that many nodes (``taskset -c <core>``) share the data dir and database behind nginx.
    ``workloads`` limits the target to those workloads (None: every one its kind runs).
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
    storage: str = "filesystem"
    workers: int | None = None
    nodes: tuple[int, ...] = ()
    workloads: frozenset[str] | None = None

    def runs(self, workload: str, kinds: frozenset[str]) -> bool:
        return self.kind in kinds and (self.workloads is None or workload in self.workloads)


# Berth's counterpart of Distribution's ``log.level: error`` + ``accesslog.disabled: true``.
BERTH_QUIET_ENV = {"BERTH_LOG_LEVEL": "error", "BERTH_SERVER__ACCESS_LOG": "false",
                   "BERTH_AUTH__AUDIT_LOG": "false"}
# Distribution runs without auth, so the comparison runs Berth without it too.
_AUTH_OFF = {"BERTH_AUTH__ENABLED": "false"}


# What the nginx targets are for: request rates (they would stream blobs too, through nginx).
_REQUEST_RATE = frozenset({"manifest-get", "blob-get"})


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
    # Issue 10, S3: blobs in a fresh bucket on the run's Ceph RGW, pulls answered 307 to a
    # presigned URL (the default), --workers 2 for every workload.
    "berth-s3": TargetSpec(name="berth-s3", kind="berth", env=_AUTH_OFF, storage="s3",
                           workers=2),
    # Diagnostic: berth-s3 streaming pulls through Berth (pull_redirect = false), pulls only;
    # its byte count shows what the pull-bytes row would be if the blob passed through.
    "berth-s3-stream": TargetSpec(name="berth-s3-stream", kind="berth",
                                  env={**_AUTH_OFF, "BERTH_STORAGE__PULL_REDIRECT": "false"},
                                  storage="s3", workers=2, workloads=frozenset({"pull"})),
    # No server: boto3 upload_file / a GET of the object, to the same RGW: the S3 ceiling.
    "s3-ceiling": TargetSpec(name="s3-ceiling", kind="s3", storage="s3"),
    # No server: the chunked push's floor on the same RGW, 16 MiB parts one at a time.
    "s3-serial": TargetSpec(name="s3-serial", kind="s3", storage="s3",
                            workloads=frozenset({"push-chunked"})),
    # Issue 10, stateless nodes: one or two Berth nodes (--workers 1, each pinned to its own
    # core) on one PostgreSQL database and one data dir, behind nginx.
    "berth-1node": TargetSpec(name="berth-1node", kind="berth", env=_AUTH_OFF,
                              metadata="postgresql", workers=1, nodes=(0,),
                              workloads=_REQUEST_RATE),
    "berth-2nodes": TargetSpec(name="berth-2nodes", kind="berth", env=_AUTH_OFF,
                               metadata="postgresql", workers=1, nodes=(0, 1),
                               workloads=_REQUEST_RATE),
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
    # Processes outside the server's group that work for it, by name: berth-pg's PostgreSQL
    # cluster, an S3 target's Ceph daemons.
    companions: dict[str, Callable[[], list[int]]] = field(default_factory=dict)
    # Every process started for the target (the first leads its process group), and the
    # named ones (a node, nginx) by pid, for the CPU split.
    procs: list[subprocess.Popen] = field(default_factory=list)
    components: dict[str, int] = field(default_factory=dict)
    bucket: str = ""
    s3: BenchRGW | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def connect(self, timeout: float = 300.0) -> Connection:
        return Connection(LOOPBACK, self.port, headers=self.headers, timeout=timeout)

    def pids(self) -> list[int]:
        """Every live process in the target's process groups (the server and its workers;
        each node and nginx of a multi-node target)."""
        if len(self.procs) <= 1:
            return group_pids(self.proc.pid) if self.proc is not None else []
        groups = {proc.pid for proc in self.procs}
        return [pid for pid, fields in process_stats()
                if len(fields) > 2 and int(fields[2]) in groups and fields[0] != b"Z"]

    def cpu_pids(self) -> list[int]:
        """The processes whose CPU time is the target's: its group plus its companions."""
        return self.pids() + [pid for pids in self.companions.values() for pid in pids()]

    def cpu_parts(self) -> dict[str, list[int]]:
        """The target's processes by part: each named component with its children (a node,
        nginx's master and workers), the rest of the group as ``server``, each companion."""
        parts = {name: descendants([pid]) for name, pid in self.components.items()}
        named = {pid for pids in parts.values() for pid in pids}
        rest = [pid for pid in self.pids() if pid not in named]
        if rest or not parts:
            parts["server"] = rest
        parts.update({name: pids() for name, pids in self.companions.items()})
        return parts

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
