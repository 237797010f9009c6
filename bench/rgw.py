"""The S3 endpoint behind S3-backed targets: one Ceph RADOS Gateway cluster per run.

The cluster is the test suite's throwaway one (``tests/support/ceph.py``: a monitor, one
``memstore`` OSD and radosgw, started by hand under a temporary directory, 127.0.0.1 only,
radosgw on port 7480). Its ports are fixed, so one runs per machine: if a pytest session
holds it, ``start()`` fails after ``lock_timeout`` seconds with a message saying so.

Only the plumbing lives here (start, stop, the endpoint and keys, the daemons' pids for the
CPU accounting); no workload uses it yet. memstore keeps every object in RAM, at most
``memstore_bytes``: size it for the run's blobs times its rounds (deleted objects are freed
after ~10 s, see ``rgw gc obj min wait``).
"""

from __future__ import annotations


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

    def pids(self) -> list[int]:
        """The monitor, OSD and radosgw processes (each a single process)."""
        if self._cluster is None:
            return []
        return list(self._cluster.pids().values())

    def describe(self) -> dict:
        if self._cluster is None:
            return {}
        return {"endpoint": self._cluster.endpoint_url, "objectstore": "memstore",
                "memstore_bytes": self._memstore_bytes}

    def stop(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None
