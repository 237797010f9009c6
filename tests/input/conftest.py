"""A live Berth with authorization on, driven with hostile input over both APIs.

The server is a real ``berth serve`` subprocess (bootstrapped admin, a policy directory that
is re-read every second); requests are signed by botocore's own SigV4 signer, so any body can
be sent byte for byte. ``snapshot()`` reads everything the server stores, so a test can show
that a refused request changed nothing.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.ecr.conftest import read_credentials
from tests.oci.helpers import sha256
from tests.support.server import BerthServer

REGION = "us-east-1"
ACCOUNT = "000000000000"
TARGET = "AmazonEC2ContainerRegistry_V20150921."
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
# Tables whose rows background workers update (leases, delivery bookkeeping): compare facts.
_FACTS = {"events": "id, kind, payload", "jobs": "id, kind, payload", "nodes": "id",
          "event_consumers": "name"}
_SKIPPED = {"leases"}


class Berth:
    """The server and ways to talk to it."""

    def __init__(self, server: BerthServer, policy_dir: Path) -> None:
        self.server = server
        self.policy_dir = policy_dir
        self.creds = read_credentials(server.data_dir / "credentials")
        self.url = server.url
        self._token: str | None = None

    # -- ECR -------------------------------------------------------------------------------

    def ecr(self, operation: str, body: bytes | dict) -> requests.Response:
        """POST a signed ECR request whose body is exactly ``body`` (dicts are json.dumps'd,
        as botocore does: non-ASCII and lone surrogates become \\u escapes)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = AWSRequest(method="POST", url=self.url + "/", data=data,
                             headers={"Content-Type": "application/x-amz-json-1.1",
                                      "X-Amz-Target": TARGET + operation})
        SigV4Auth(Credentials(self.creds.key_id, self.creds.secret), "ecr",
                  REGION).add_auth(request)
        return requests.post(request.url, data=data, headers=dict(request.headers.items()),
                             timeout=60)

    # -- OCI -------------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            resp = self.ecr("GetAuthorizationToken", {})
            assert resp.status_code == 200, resp.text
            self._token = resp.json()["authorizationData"][0]["authorizationToken"]
        return self._token

    def v2(self, method: str, path: str, *, data: bytes | None = None,
           headers: dict[str, str] | None = None) -> requests.Response:
        """A /v2/ request; ``path`` is sent as written (percent-escapes included)."""
        all_headers = {"Authorization": f"Basic {self.token()}", **(headers or {})}
        session = requests.Session()
        prepared = requests.Request(method, self.url + path, data=data,
                                    headers=all_headers).prepare()
        prepared.url = self.url + path  # keep %0A and friends exactly as written
        return session.send(prepared, timeout=60)

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        resp = self.v2("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data)
        assert resp.status_code == 201, resp.text
        return digest

    def push_manifest(self, repo: str, tag: str, manifest: bytes) -> str:
        resp = self.v2("PUT", f"/v2/{repo}/manifests/{tag}", data=manifest,
                       headers={"Content-Type": MANIFEST_TYPE})
        assert resp.status_code == 201, resp.text
        return resp.headers["Docker-Content-Digest"]

    # -- CLI -------------------------------------------------------------------------------

    def berth(self, *args: str | bytes) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "registry", *args],
                              capture_output=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])

    # -- state -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """Blob files, upload sessions, policy files and every database table's rows."""
        data = self.server.data_dir
        files = sorted(str(p.relative_to(data)) for p in (data / "blobs").rglob("*")
                       if p.is_file())
        uploads = data / "uploads"
        sessions = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
        policy_files = sorted((str(p.relative_to(self.policy_dir)), p.read_bytes())
                              for p in self.policy_dir.rglob("*") if p.is_file())
        conn = sqlite3.connect(f"file:{data / 'metadata.db'}?mode=ro", uri=True)
        try:
            names = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            tables = {name: conn.execute(
                f"SELECT {_FACTS.get(name, '*')} FROM {name} ORDER BY 1").fetchall()
                for name in names if name not in _SKIPPED}
        finally:
            conn.close()
        return {"files": files, "sessions": sessions, "policy_files": policy_files,
                "tables": tables}


def image_manifest(config_digest: str, config_size: int, layers: list[tuple[str, int]]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d,
                    "size": s} for d, s in layers]}).encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("berth-input")
    policy_dir = workdir / "policies"
    policy_dir.mkdir()
    server = BerthServer(workdir / "srv", env={
        "BERTH_AUTH__POLICY_DIR": str(policy_dir), "BERTH_AUTH__POLICY_RELOAD_SECONDS": "1"})
    server.start()
    try:
        yield Berth(server, policy_dir)
    finally:
        server.stop()
