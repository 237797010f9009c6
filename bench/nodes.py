"""Several Berth nodes behind nginx, as one benchmark target (``berth-1node``,
``berth-2nodes``).

Each node is ``taskset -c <core> python3 -m registry serve --workers N`` on its own loopback
port, all of them on the target's one data dir (the filesystem blob store, and the master key
in it, shared the way a shared volume would be) and the target's one PostgreSQL database, so
any node answers any request. nginx (``bench/nginx.py``) listens on the target's port and
balances over the nodes; it is not pinned, nor is the load generator. The nodes start one
after the other (the first one creates the schema) and must each answer ``/healthz`` before
nginx starts; the target is ready when ``/healthz`` answers through nginx.

Every process joins the first node's process group, so the harness stops, samples and
accounts for them as one target; each is also a named component (``node-a (core 0)``,
``nginx``) for the CPU split of the request-rate workloads.
"""

from __future__ import annotations

import os
import shutil

from bench.nginx import INSTALL_HINT, NGINX_BINARY, nginx_command, nginx_config
from bench.launcher import Launcher, wait_ready
from bench.targets import LOOPBACK, RunningTarget, free_port

TASKSET = shutil.which("taskset") or "/usr/bin/taskset"


def node_name(index: int, core: int) -> str:
    return f"node-{chr(ord('a') + index)} (core {core})"


def start_nodes(launcher: Launcher, target: RunningTarget, *, env: dict[str, str],
                workers: int | None) -> None:
    """Start ``target.spec.nodes`` Berth nodes and nginx in front of them on ``target.port``.

    Raises:
        RuntimeError: nginx or taskset is missing, a core does not exist, or a node or nginx
            exited or did not become ready.
    """
    spec = target.spec
    if not os.path.exists(NGINX_BINARY):
        raise RuntimeError(f"{spec.name} needs nginx: {INSTALL_HINT}")
    cores = os.sched_getaffinity(0)
    missing = [core for core in spec.nodes if core not in cores]
    if missing:
        raise RuntimeError(f"{spec.name} pins nodes to cores {list(spec.nodes)}; "
                           f"core(s) {missing} are not available here")
    upstreams = []
    taken = {target.port}
    for index, core in enumerate(spec.nodes):
        port = free_port()
        while port in taken:
            port = free_port()
        taken.add(port)
        argv, health_path = launcher.command(spec, port, target.data_dir, workers)
        launcher.spawn(target, [TASKSET, "-c", str(core), *argv], env=env,
                       name=node_name(index, core))
        wait_ready(target, port, health_path)
        upstreams.append(f"{LOOPBACK}:{port}")
    prefix = target.data_dir + ".nginx"
    os.mkdir(prefix, 0o700)
    with open(os.path.join(prefix, "nginx.conf"), "w") as handle:
        handle.write(nginx_config(prefix=prefix, listen=f"{LOOPBACK}:{target.port}",
                                  upstreams=upstreams))
    launcher.spawn(target, nginx_command(prefix), env=dict(os.environ), name="nginx")
    wait_ready(target, target.port, "/healthz")
