"""A Berth under test for the scan benchmark, and the clients a user would point at it.

``ScanBerth`` runs ``python3 -m registry serve --config <file>`` through the end-to-end
tests' ``BerthServer`` (own process group, fresh data dir, a free port on 127.0.0.1) with
authorization **on**: every call is made with the administrator keys Berth writes to
``<data>/credentials`` on its first start — SigV4-signed ECR calls through boto3, and OCI
calls with the ``Authorization: Basic`` header that ``docker login`` would send, from the
ECR ``GetAuthorizationToken``. The vulnerability DB is loaded with the CLI a user runs,
``python3 -m registry scanner update-db --file``.

``OciClient`` pushes over the OCI distribution API: per blob one ``POST
/v2/<name>/blobs/uploads/`` and one monolithic ``PUT <location>?digest=`` with the whole blob
as the body, then ``PUT /v2/<name>/manifests/<tag>`` (no ``HEAD`` existence checks: every
blob is new to the server).
"""

from __future__ import annotations

import configparser
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import boto3
import requests
from botocore.config import Config as BotoConfig

from bench.scan_images import PushImage
from tests.support.server import REPO_ROOT, BerthServer

REGION = "us-east-1"
SCAN_TIMEOUT = 300.0  # seconds any one scan may take before the benchmark gives up


class BenchError(RuntimeError):
    """A step of the benchmark failed (the message says which, with the server log tail)."""


class _SourceBerth(BerthServer):
    """``BerthServer`` running the ``registry`` package of another source tree (a patched
    copy, to measure a proposed change without touching the work tree)."""

    def __init__(self, *args, src: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.src = src

    def command(self) -> list[str]:
        cmd = super().command()
        if self.src.resolve() == REPO_ROOT.resolve():
            return cmd
        boot = (f"import sys, runpy; sys.path.insert(0, {str(self.src)!r}); "
                "runpy.run_module('registry', run_name='__main__', alter_sys=True)")
        return [sys.executable, "-c", boot, *cmd[3:]]  # cmd[:3] is python3 -m registry


class ScanBerth:
    def __init__(self, workdir: Path, *, config: str, env: dict[str, str],
                 src: Path = REPO_ROOT) -> None:
        self.workdir = workdir
        self.src = src
        self.config_path = workdir / "berth.toml"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config)
        self.server = _SourceBerth(workdir / "srv", extra_args=["--config", str(self.config_path)],
                                   env=env, startup_timeout=60.0, src=src)
        self.ecr = None
        self.oci: OciClient | None = None

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def start(self) -> "ScanBerth":
        self.server.start()
        parser = configparser.ConfigParser()
        parser.read(self.server.data_dir / "credentials")
        keys = parser["default"]
        self.ecr = boto3.client("ecr", endpoint_url=self.server.url, region_name=REGION,
                                aws_access_key_id=keys["aws_access_key_id"],
                                aws_secret_access_key=keys["aws_secret_access_key"],
                                config=BotoConfig(retries={"max_attempts": 1}))
        token = self.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        self.oci = OciClient(self.server.url, {"Authorization": f"Basic {token}"})
        return self

    def load_db(self, layer: bytes) -> None:
        """``berth scanner update-db --file`` against this server's data dir."""
        path = self.workdir / "db.tar.gz"
        path.write_bytes(layer)
        result = subprocess.run(
            [sys.executable, "-m", "registry", "scanner", "update-db", "--file", str(path),
             "--config", str(self.config_path), "--data", str(self.server.data_dir)],
            cwd=self.src, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise BenchError(f"update-db failed: {result.stderr[-2000:]}")

    def create_repository(self, name: str, *, scan_on_push: bool) -> None:
        self.ecr.create_repository(repositoryName=name,
                                   imageScanningConfiguration={"scanOnPush": scan_on_push})

    def scan_status(self, repo: str, digest: str) -> tuple[str, dict]:
        """(status, findingSeverityCounts) of the image's scan; status NONE if none yet."""
        try:
            found = self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                          imageId={"imageDigest": digest})
        except self.ecr.exceptions.ScanNotFoundException:
            return "NONE", {}
        counts = found.get("imageScanFindings", {}).get("findingSeverityCounts", {})
        return found["imageScanStatus"]["status"], counts

    def wait_scan(self, repo: str, digest: str, *, poll: float, timeout: float
                  ) -> tuple[float, str, dict, int]:
        """Poll DescribeImageScanFindings every ``poll`` s until the scan is over; return
        (monotonic time the end was first seen, status, severity counts, polls).

        Raises:
            BenchError: not over within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        polls = 0
        while time.monotonic() < deadline:
            status, counts = self.scan_status(repo, digest)
            polls += 1
            if status not in ("IN_PROGRESS", "PENDING", "NONE"):
                return time.monotonic(), status, counts, polls
            time.sleep(poll)
        raise BenchError(f"scan of {repo}@{digest} not over after {timeout:g}s\n"
                         f"{self.server.log_tail(30)}")

    def unfinished_scans(self, repo: str) -> int:
        """How many images of ``repo`` have a scan not yet over (DescribeImages)."""
        pending = 0
        try:
            for page in self.ecr.get_paginator("describe_images").paginate(repositoryName=repo):
                for detail in page["imageDetails"]:
                    status = detail.get("imageScanStatus", {}).get("status")
                    pending += status in ("IN_PROGRESS", "PENDING")
        except self.ecr.exceptions.RepositoryNotFoundException:
            return 0
        return pending

    def trivy_log_seconds(self, digest: str) -> tuple[float, float] | None:
        """(wall-clock end, seconds) of the server's ``trivy scan finished`` line for
        ``digest`` (``trivy image`` + report parsing + ``trivy convert``), if logged."""
        for line in self.server.log().splitlines():
            if '"trivy scan finished"' not in line or digest not in line:
                continue
            entry = json.loads(line)
            end = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            end_wall = (end - datetime(1970, 1, 1)).total_seconds()
            return end_wall, float(entry["seconds"])
        return None

    def stop(self) -> None:
        """Stop the server (SIGTERM to its group; Berth kills its own Trivy runs), then kill
        any Trivy it left behind: Trivy runs in a session of its own."""
        leftovers = _trivy_under(self.workdir)
        try:
            self.server.stop()
        finally:
            for child in leftovers + _trivy_under(self.workdir):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _trivy_under(workdir: Path) -> list[int]:
    """PIDs of Trivy processes whose command line names a path inside ``workdir``."""
    found = []
    marker = str(workdir).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"trivy") and any(marker in arg for arg in argv):
            found.append(int(entry))
    return found


@dataclass(frozen=True)
class PushTiming:
    started: float  # monotonic, before the first request
    blobs_done: float
    ended: float  # the manifest PUT's 201 received
    bytes: int

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class OciClient:
    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(headers)

    def _check(self, response: requests.Response, expected: int, what: str) -> None:
        if response.status_code != expected:
            raise BenchError(f"{what}: HTTP {response.status_code} {response.text[:500]}")

    def push_blob(self, repo: str, digest: str, data: bytes) -> None:
        started = self.session.post(f"{self.base_url}/v2/{repo}/blobs/uploads/", timeout=60)
        self._check(started, 202, f"POST upload {repo}")
        location = urljoin(self.base_url, started.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = self.session.put(f"{location}{separator}digest={digest}", data=data,
                                headers={"Content-Type": "application/octet-stream"},
                                timeout=300)
        self._check(done, 201, f"PUT blob {digest} to {repo}")

    def push(self, repo: str, tag: str, image: PushImage) -> PushTiming:
        """Upload every blob, then the manifest; time it from the first request to the
        manifest's 201."""
        started = time.monotonic()
        for digest, data in image.blobs:
            self.push_blob(repo, digest, data)
        blobs_done = time.monotonic()
        response = self.session.put(f"{self.base_url}/v2/{repo}/manifests/{tag}",
                                    data=image.manifest,
                                    headers={"Content-Type": image.media_type}, timeout=60)
        self._check(response, 201, f"PUT manifest {repo}:{tag}")
        return PushTiming(started, blobs_done, time.monotonic(), image.size)
