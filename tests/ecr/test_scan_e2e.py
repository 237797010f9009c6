"""Scan on push end to end: a real Berth, the real Trivy, a fixture vulnerability DB loaded
with `berth scanner update-db`, real PyPI wheels in the image, a webhook receiver."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from botocore.exceptions import ClientError

from scanner.trivydb import build_db_artifact
from scanner.webhooks import verify_signature
from tests.support.metadata import cli_env
from tests.ecr.conftest import AuthServer
from tests.ecr.test_images import upload_layer
from tests.scanner import fixtures
from tests.support.images import Image
from tests.support.server import BerthServer
from tests.support.trivydb import write_trivy_db

SECRET = "webhook-test-secret"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that refuses the first ``failures`` deliveries."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict, dict]] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.refused < outer.failures:
                    outer.refused += 1
                    self.send_response(500)
                else:
                    outer.received.append((dict(self.headers), json.loads(body)))
                    assert verify_signature(SECRET, self.headers["X-Berth-Signature"], body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, detail_type: str) -> list[dict]:
        return [body for _, body in self.received if body["detail-type"] == detail_type]


def wait_for(predicate, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def scan_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("scan-e2e")
    receiver = Receiver(failures=3)
    config = work / "berth.toml"
    config.write_text(f'[[webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
                      'allow_private_network = true\n'  # the receiver is on 127.0.0.1
                      f'[scanner]\ndb_check_seconds = 1\n')
    server = BerthServer(work / "srv", extra_args=["--config", str(config)])
    server.start()
    db_dir = work / "db"
    write_trivy_db(db_dir, fixtures.buckets(), updated_at=fixtures.UPDATED_AT)
    layer_file = work / "db.tar.gz"
    layer_file.write_bytes(build_db_artifact(db_dir)[1])
    result = subprocess.run([sys.executable, "-m", "registry", "scanner", "update-db", "--file",
                             str(layer_file), "--data", str(server.data_dir)],
                            capture_output=True, text=True, timeout=120,
                            env=cli_env(server.data_dir))
    assert result.returncode == 0, result.stderr
    yield AuthServer(server), receiver, work
    server.stop()
    receiver.server.shutdown()


def push_wheels(ecr, name: str, tag: str) -> Image:
    image = Image.build([fixtures.wheel_layer()])
    for blob in image.blobs():
        upload_layer(ecr, name, blob.data)
    ecr.put_image(repositoryName=name, imageManifest=image.manifest.data.decode(),
                  imageManifestMediaType="application/vnd.oci.image.manifest.v1+json",
                  imageTag=tag)
    return image


def test_corrupt_db_is_refused_and_changes_nothing(scan_env):
    auth_server, _, work = scan_env
    bad = work / "corrupt.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    result = subprocess.run([sys.executable, "-m", "registry", "scanner", "update-db", "--file",
                             str(bad), "--data", str(auth_server.server.data_dir)],
                            capture_output=True, text=True, timeout=60,
                            env=cli_env(auth_server.server.data_dir))
    assert result.returncode == 1
    assert "invalid vulnerability database" in result.stderr
    images = auth_server.client().describe_images(repositoryName="aquasec/trivy-db")
    assert len(images["imageDetails"]) == 1  # still the good DB


def test_scan_on_push_findings_sbom_webhooks_and_pull_protection(scan_env, name):
    auth_server, receiver, _ = scan_env
    ecr = auth_server.client()
    ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": True})
    image = push_wheels(ecr, name, "v1")
    ecr.get_waiter("image_scan_complete").wait(
        repositoryName=name, imageId={"imageTag": "v1"},
        WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    result = ecr.describe_image_scan_findings(repositoryName=name, imageId={"imageTag": "v1"})
    assert result["imageScanStatus"] == {"status": "COMPLETE",
                                         "description": "The scan was completed successfully."}
    findings = result["imageScanFindings"]
    got = {(f["name"], {a["key"]: a["value"] for a in f["attributes"]}["package_name"],
            {a["key"]: a["value"] for a in f["attributes"]}["package_version"])
           for f in findings["findings"]}
    assert got == fixtures.WHEEL_FINDINGS
    werkzeug = next(f for f in findings["findings"] if f["name"] == "CVE-2019-14806")
    assert werkzeug["severity"] == "HIGH"
    attributes = {a["key"]: a["value"] for a in werkzeug["attributes"]}
    assert attributes["CVSS3_SCORE"] == "7.5" and attributes["CVSS3_VECTOR"].startswith("CVSS:3")
    assert findings["vulnerabilitySourceUpdatedAt"].year == 2026
    assert sum(findings["findingSeverityCounts"].values()) == len(fixtures.WHEEL_FINDINGS)
    paged = [f for page in ecr.get_paginator("describe_image_scan_findings").paginate(
        repositoryName=name, imageId={"imageTag": "v1"}, PaginationConfig={"PageSize": 2})
        for f in page["imageScanFindings"]["findings"]]
    assert len(paged) == len(fixtures.WHEEL_FINDINGS)

    detail = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v1"}])[
        "imageDetails"][0]
    assert detail["imageScanStatus"]["status"] == "COMPLETE"
    assert detail["imageScanFindingsSummary"]["findingSeverityCounts"] == \
        findings["findingSeverityCounts"]

    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    basic = {"Authorization": f"Basic {token}"}
    referrers = requests.get(f"{auth_server.url}/v2/{name}/referrers/{image.digest}",
                             headers=basic, timeout=10).json()["manifests"]
    sboms = [r for r in referrers if r.get("artifactType") == "application/vnd.cyclonedx+json"]
    assert len(sboms) == 1
    sbom_manifest = requests.get(f"{auth_server.url}/v2/{name}/manifests/{sboms[0]['digest']}",
                                 headers={**basic, "Accept": "application/vnd.oci.image.manifest.v1+json"},
                                 timeout=10).json()
    sbom = requests.get(f"{auth_server.url}/v2/{name}/blobs/"
                        f"{sbom_manifest['layers'][0]['digest']}", headers=basic, timeout=10).json()
    assert sbom["bomFormat"] == "CycloneDX"
    assert any(c["name"].lower() == "werkzeug" for c in sbom["components"])

    scans = wait_for(lambda: [e for e in receiver.events("ECR Image Scan")
                              if e["detail"]["repository-name"] == name], what="scan webhook")
    assert scans[0]["detail"]["scan-status"] == "COMPLETE"
    assert scans[0]["detail"]["image-digest"] == image.digest
    assert scans[0]["detail"]["finding-severity-counts"] == findings["findingSeverityCounts"]
    pushes = wait_for(lambda: [e for e in receiver.events("ECR Image Action")
                               if e["detail"]["repository-name"] == name], what="push webhook")
    assert pushes[0]["detail"]["action-type"] == "PUSH"
    assert pushes[0]["source"] == "aws.ecr" and pushes[0]["version"] == "0"
    assert receiver.refused == 3  # the first three deliveries failed and were retried

    with pytest.raises(ClientError) as excinfo:
        ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "v1"})
    assert excinfo.value.response["Error"]["Code"] == "LimitExceededException"

    url = f"{auth_server.url}/v2/{name}/manifests/v1"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    assert requests.get(url, headers={**basic, **accept}, timeout=10).status_code == 200
    arn = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryArn"]
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "berth:block-pulls-at-severity",
                                             "Value": "HIGH"}])
    refused = requests.get(url, headers={**basic, **accept}, timeout=10)
    assert refused.status_code == 403
    error = refused.json()["errors"][0]
    assert error["code"] == "DENIED" and "HIGH" in error["message"]
    # Every other path that hands the image out refuses it too (issue 8).
    batch = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    assert batch["images"] == []
    assert [f["failureCode"] for f in batch["failures"]] == ["ImageInaccessible"]
    layer = image.layers[0].digest
    with pytest.raises(ClientError) as excinfo:
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest=layer)
    assert excinfo.value.response["Error"]["Code"] == "LayerInaccessibleException"
    assert requests.get(f"{auth_server.url}/v2/{name}/blobs/{layer}", headers=basic,
                        timeout=10).status_code == 403
    ecr.untag_resource(resourceArn=arn, tagKeys=["berth:block-pulls-at-severity"])
    wait_for(lambda: requests.get(url, headers={**basic, **accept}, timeout=10).status_code
             == 200, timeout=5, what="pull protection lifted")


def test_server_killed_mid_scan_finishes_after_restart(scan_env, name):
    auth_server, _, _ = scan_env
    ecr = auth_server.client()
    ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": True})
    push_wheels(ecr, name, "v1")
    auth_server.server.kill9()  # the scan was queued with the push; it may be running now
    auth_server.server.start()
    ecr = auth_server.client()
    ecr.get_waiter("image_scan_complete").wait(
        repositoryName=name, imageId={"imageTag": "v1"},
        WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    findings = ecr.describe_image_scan_findings(repositoryName=name, imageId={"imageTag": "v1"})
    assert len(findings["imageScanFindings"]["findings"]) == len(fixtures.WHEEL_FINDINGS)


def test_enhanced_findings_and_rescan_when_the_db_changes(scan_env, name, tmp_path):
    auth_server, _, _ = scan_env
    ecr = auth_server.client()
    ecr.create_repository(repositoryName=name)
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[
        {"scanFrequency": "CONTINUOUS_SCAN",
         "repositoryFilters": [{"filter": name, "filterType": "WILDCARD"}]}])
    try:
        push_wheels(ecr, name, "v1")
        ecr.get_waiter("image_scan_complete").wait(
            repositoryName=name, imageId={"imageTag": "v1"},
            WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        first = ecr.describe_image_scan_findings(repositoryName=name,
                                                 imageId={"imageTag": "v1"})["imageScanFindings"]
        enhanced = {f["packageVulnerabilityDetails"]["vulnerabilityId"]: f
                    for f in first["enhancedFindings"]}
        assert "findings" not in first
        werkzeug = enhanced["CVE-2019-14806"]
        package = werkzeug["packageVulnerabilityDetails"]["vulnerablePackages"][0]
        assert (package["name"], package["version"], package["fixedInVersion"]) == \
            ("Werkzeug", "0.15.2", "0.15.3")
        assert package["packageManager"] == "PYTHONPKG"
        assert werkzeug["fixAvailable"] == "YES" and werkzeug["status"] == "ACTIVE"
        assert werkzeug["resources"][0]["type"] == "AWS_ECR_CONTAINER_IMAGE"

        # A newer DB with one more advisory: the CONTINUOUS_SCAN image is rescanned by itself.
        advisories = {**fixtures.PIP_ADVISORIES, "werkzeug": {
            **fixtures.PIP_ADVISORIES["werkzeug"],
            "CVE-2099-0001": fixtures.pip("< 9.0", "9.0")}}
        newer = fixtures.UPDATED_AT.replace(year=2027)
        write_trivy_db(tmp_path / "db2", fixtures.buckets(pip_advisories=advisories),
                       updated_at=newer)
        layer = tmp_path / "db2.tar.gz"
        layer.write_bytes(build_db_artifact(tmp_path / "db2")[1])
        subprocess.run([sys.executable, "-m", "registry", "scanner", "update-db", "--file",
                        str(layer), "--data", str(auth_server.server.data_dir)], check=True,
                       capture_output=True, timeout=120, env=cli_env(auth_server.server.data_dir))

        def rescanned():
            result = ecr.describe_image_scan_findings(repositoryName=name,
                                                      imageId={"imageTag": "v1"})
            found = result.get("imageScanFindings", {})
            return found.get("vulnerabilitySourceUpdatedAt", first[
                "vulnerabilitySourceUpdatedAt"]).year == 2027 and found

        second = wait_for(rescanned, what="rescan after the DB update")
        ids = {f["packageVulnerabilityDetails"]["vulnerabilityId"]
               for f in second["enhancedFindings"]}
        assert "CVE-2099-0001" in ids
    finally:
        ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[])
