"""The S3 endpoint behind S3-backed targets: one Ceph RADOS Gateway cluster per run.

The cluster is the test suite's throwaway one (``tests/support/ceph.py``: a monitor, one
``memstore`` OSD and radosgw, started by hand under a temporary directory, 127.0.0.1 only,
radosgw on port 7480). Its ports are fixed, so one runs per machine: if a pytest session
holds it, ``start()`` fails after ``lock_timeout`` seconds with a message saying so.

Only the plumbing lives here: start, stop, the endpoint and keys, a bucket per target start
(``new_bucket``/``drop_bucket``), the credentials file Berth reads, and the daemons' pids for
the CPU accounting. memstore keeps every object in RAM, at most ``memstore_bytes``; deleted
objects would stay there until RGW's garbage collector runs (``rgw gc obj min wait``, 10 s in
the test config), so ``drop_bucket`` runs the collector at once (``radosgw-admin gc process
--include-all``): the RAM held is one target start's objects, whatever the number of rounds.
"""

from __future__ import annotations

import os
import subprocess
import uuid

from bench.rss import status_kib

PROFILE = "bench"
_ADMIN_TIMEOUT = 300


class BenchRGW:
    """``start()`` once, ``stop()`` at exit (safe to call twice, or after a failed start)."""

    def __init__(self, *, tmp_root: str, memstore_bytes: int = 8 << 30,
                 lock_timeout: float = 5.0) -> None:
        self._tmp_root = tmp_root
        self._memstore_bytes = memstore_bytes
        self._lock_timeout = lock_timeout
        self._cluster = None

    def start(self) -> None:
        """Start the cluster under ``tmp_root``.

        Raises:
            RuntimeError: Ceph or boto3 is missing, another cluster runs on this machine,
                or the cluster did not start.
        """
        try:
            from tests.support.ceph import CephRGW
        except ImportError as exc:
            raise RuntimeError(f"cannot load tests/support/ceph.py: {exc}") from exc
        try:
            cluster = CephRGW(tmp_root=self._tmp_root, memstore_bytes=self._memstore_bytes,
                              lock_timeout=self._lock_timeout)
            cluster.start()
        except RuntimeError as exc:
            raise RuntimeError(f"Ceph RGW cluster did not start: {exc}") from exc
        self._cluster = cluster

    def _running(self):
        if self._cluster is None:
            raise RuntimeError("Ceph RGW cluster is not running")
        return self._cluster

    @property
    def endpoint_url(self) -> str:
        return self._running().endpoint_url

    @property
    def region(self) -> str:
        return self._running().region

    def credentials(self) -> tuple[str, str]:
        """(access key, secret key) of the cluster's S3 user. Never print the second."""
        cluster = self._running()
        return cluster.access_key, cluster.secret_key

    def client(self):
        """A boto3 S3 client configured for RGW (see ``CephRGW.client``)."""
        return self._running().client()

    def create_bucket(self, name: str) -> str:
        return self._running().create_bucket(name)

    def new_bucket(self, label: str) -> str:
        """A brand-new empty bucket named after ``label``; returns its name."""
        cleaned = "".join(c for c in label.lower() if c.isalnum() or c == "-")[:30]
        return self._running().create_bucket(f"bench-{cleaned}-{uuid.uuid4().hex[:12]}")

    def drop_bucket(self, name: str) -> None:
        """Delete the bucket with everything in it (multipart uploads aborted), then run
        RGW's garbage collector so memstore frees the objects' RAM now.

        Raises:
            RuntimeError: the cluster is not running, or the collector failed.
        """
        cluster = self._running()
        cluster.delete_bucket(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CEPH_")}
        done = subprocess.run(
            [cluster.tools["radosgw-admin"], "--conf", str(cluster.conf_path), "gc",
             "process", "--include-all"], env=env, cwd=cluster.base_dir,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_ADMIN_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"radosgw-admin gc process exited {done.returncode}: "
                               f"{done.stderr.strip()[-400:]}")

    def write_credentials_file(self, path: str) -> str:
        """Write the S3 user's keys to ``path`` (created 0600, never overwritten) as
        profile ``bench`` of an AWS shared credentials file; returns the profile name."""
        access_key, secret_key = self.credentials()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"[{PROFILE}]\naws_access_key_id = {access_key}\n"
                         f"aws_secret_access_key = {secret_key}\n")
        return PROFILE

    def osd_peak_mib(self) -> float:
        """The OSD's peak resident memory so far (VmHWM): what memstore held at most."""
        if self._cluster is None:
            return 0.0
        pid = self._cluster.pids().get("osd")
        return round(status_kib(pid, b"VmHWM:") / 1024, 1) if pid else 0.0

    def pids(self) -> list[int]:
        """The monitor, OSD and radosgw processes (each a single process)."""
        if self._cluster is None:
            return []
        return list(self._cluster.pids().values())

    def describe(self) -> dict:
        if self._cluster is None:
            return {}
        return {"endpoint": self._cluster.endpoint_url, "objectstore": "memstore",
                "memstore_bytes": self._memstore_bytes, "osd_peak_rss_mib": self.osd_peak_mib()}

    def stop(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None
