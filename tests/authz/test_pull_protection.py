"""Pull protection covers every path that hands out a blocked image (issue 8, §3).

Scan results come from the real scan service (scanner/jobs.py) with the hand-written
StaticScanner in place of Trivy: image ``bad`` has a HIGH finding, image ``good`` has none.
Both share a base layer; each also has a layer and a config of its own. With the repository
tagged ``berth:block-pulls-at-severity=HIGH``:

- the manifest of ``bad`` is refused on /v2/ (as before) and reported in BatchGetImage's
  ``failures`` as ``ImageInaccessible``, without recording a pull;
- GetDownloadUrlForLayer refuses ``bad``'s own layer and config (LayerInaccessibleException)
  and hands out the shared base layer, which a pullable image needs;
- /v2/ GET of those blobs is refused the same way (a client holding the digests must not
  skip the manifest), HEAD still answers, and a mount of them falls back to an upload;
- the platform manifests of a blocked index, and their layers, are blocked with it.
"""

from __future__ import annotations

import json
import os

import pytest

from registry.app import create_app
from registry.appkeys import BLOB_CACHE, BLOBS, METADATA
from registry.config import load_config
from registry.metadata.writes import NewJob, RequestScan
from registry.scanning import SCAN_JOB
from scanner import Cvss, Finding, ScanReport, ScanStatus
from scanner.jobs import ScanService
from tests.authz.ecr_local import ecr_call, ecr_ok
from tests.oci.helpers import image_manifest, push_blob, sha256
from tests.scanner.fakes import StaticScanner

REPO = "protected/app"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
HIGH = Finding("CVE-2019-14806", (), "Werkzeug", "python", "0.15.2", "0.15.3", "fixed", "HIGH",
               Cvss(7.5, None, "nvd"), "", "", None, (), None, None, None, None, "ghsa")


def report(*findings: Finding) -> ScanReport:
    return ScanReport(ScanStatus.COMPLETE, "The scan was completed successfully.", findings,
                      None, None, None, "static", "1.0.0")



async def push(client, name: str, tag: str, layers: list[bytes]) -> dict[str, str]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag,
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    for blob in [config, *layers]:
        await push_blob(client, name, blob)
    manifest = image_manifest(config, layers)
    response = await client.put(f"/v2/{name}/manifests/{tag}", data=manifest,
                                headers={"Content-Type": MANIFEST_TYPE})
    assert response.status == 201, await response.text()
    return {"manifest": sha256(manifest), "config": sha256(config)}


async def scan(client, name: str, results: dict[str, ScanReport], tmp_path, *,
               scanner_results: dict[str, ScanReport] | None = None) -> None:
    """Request and run a scan of each image in ``results`` through the scan service, as the
    scan worker does; the scanner answers ``scanner_results`` (by default ``results``: an
    index's platform manifests are what the scanner sees)."""
    app = client.server.app
    metadata = app[METADATA]
    repo = await metadata.get_repository("000000000000", name)
    service = ScanService(metadata, app[BLOBS], app[BLOB_CACHE],
                          StaticScanner(scanner_results or results), tmp_path / "scan-work",
                          "us-east-1")
    for digest in results:
        await metadata.start_scan(RequestScan(repo.id, digest, NewJob(SCAN_JOB, {})),
                                  min_interval=None)
        await service.run({"account": "000000000000", "repository": name, "digest": digest})
        assert (await metadata.get_scan(repo.id, digest)).status == "COMPLETE"


@pytest.fixture
async def images(client, tmp_path):
    base, bad_layer, good_layer = os.urandom(3000), os.urandom(3001), os.urandom(3002)
    bad = await push(client, REPO, "bad", [base, bad_layer])
    good = await push(client, REPO, "good", [base, good_layer])
    await scan(client, REPO, {bad["manifest"]: report(HIGH), good["manifest"]: report()},
               tmp_path)
    layers = {"base": sha256(base), "bad": sha256(bad_layer), "good": sha256(good_layer),
              "bad-config": bad["config"], "good-config": good["config"]}
    return bad["manifest"], good["manifest"], layers


async def protect(client, severity: str | None) -> None:
    arn = f"arn:aws:ecr:us-east-1:000000000000:repository/{REPO}"
    if severity is None:
        await ecr_ok(client, "UntagResource", resourceArn=arn,
                     tagKeys=["berth:block-pulls-at-severity"])
    else:
        await ecr_ok(client, "TagResource", resourceArn=arn, tags=[
            {"Key": "berth:block-pulls-at-severity", "Value": severity}])


async def test_batch_get_image_reports_blocked_images_as_failures(client, images):
    bad, good, _ = images
    await protect(client, "HIGH")
    result = await ecr_ok(client, "BatchGetImage", repositoryName=REPO,
                          imageIds=[{"imageTag": "bad"}, {"imageTag": "good"}])
    assert [i["imageId"] for i in result["images"]] == [{"imageDigest": good,
                                                          "imageTag": "good"}]
    assert len(result["failures"]) == 1
    failure = result["failures"][0]
    assert failure["imageId"] == {"imageDigest": bad, "imageTag": "bad"}
    assert failure["failureCode"] == "ImageInaccessible"
    assert "HIGH" in failure["failureReason"] and REPO in failure["failureReason"]
    details = {d["imageDigest"]: d for d in (await ecr_ok(
        client, "DescribeImages", repositoryName=REPO))["imageDetails"]}
    assert "lastRecordedPullTime" not in details[bad]  # a refused pull is not a pull
    assert "lastRecordedPullTime" in details[good]
    # The manifest route refuses it as before; a threshold above HIGH lets it through.
    refused = await client.get(f"/v2/{REPO}/manifests/bad", headers={"Accept": MANIFEST_TYPE})
    assert refused.status == 403
    await protect(client, "CRITICAL")
    result = await ecr_ok(client, "BatchGetImage", repositoryName=REPO,
                          imageIds=[{"imageTag": "bad"}])
    assert result["failures"] == [] and len(result["images"]) == 1


@pytest.mark.parametrize("layer, refused", [
    ("bad", True), ("bad-config", True), ("base", False), ("good", False),
    ("good-config", False)])
async def test_layers_only_blocked_images_use_are_withheld(client, images, layer, refused):
    _, _, layers = images
    await protect(client, "HIGH")
    digest = layers[layer]
    status, body = await ecr_call(client, "GetDownloadUrlForLayer", repositoryName=REPO,
                                  layerDigest=digest)
    get = await client.get(f"/v2/{REPO}/blobs/{digest}")
    if refused:
        assert status == 400 and body["__type"] == "LayerInaccessibleException"
        assert "pull protection" in body["message"] and "HIGH" in body["message"]
        assert get.status == 403
        error = (await get.json())["errors"][0]
        assert error["code"] == "DENIED" and "blocked" in error["message"]
    else:
        assert status == 200 and body["layerDigest"] == digest
        assert body["downloadUrl"].endswith(f"/v2/{REPO}/blobs/{digest}")
        assert get.status == 200
    # HEAD is an existence check for pushes, not a download: it always answers.
    assert (await client.head(f"/v2/{REPO}/blobs/{digest}")).status == 200


async def test_withheld_layers_are_handed_out_again_when_protection_is_lifted(client, images):
    _, _, layers = images
    await protect(client, "HIGH")
    assert (await client.get(f"/v2/{REPO}/blobs/{layers['bad']}")).status == 403
    await protect(client, None)
    status, _ = await ecr_call(client, "GetDownloadUrlForLayer", repositoryName=REPO,
                               layerDigest=layers["bad"])
    assert status == 200
    assert (await client.get(f"/v2/{REPO}/blobs/{layers['bad']}")).status == 200


async def test_a_withheld_layer_is_not_mounted_elsewhere(client, images):
    _, _, layers = images
    await client.server.app[METADATA].put_setting("000000000000", "BLOB_MOUNTING", "ENABLED")
    await protect(client, "HIGH")
    blocked = await client.post(f"/v2/elsewhere/blobs/uploads/?mount={layers['bad']}"
                                f"&from={REPO}")
    assert blocked.status == 202
    shared = await client.post(f"/v2/elsewhere/blobs/uploads/?mount={layers['base']}"
                               f"&from={REPO}")
    assert shared.status == 201


async def test_the_platform_manifests_of_a_blocked_index_are_blocked_with_it(client, tmp_path):
    """An index is scanned as a whole (its result is stored under the index digest): a
    client that knows a platform manifest's digest must not pull it, nor its layers."""
    own_layer = os.urandom(3003)
    child = await push(client, "protected/multi", "amd64", [own_layer])
    child_body = await (await client.get(f"/v2/protected/multi/manifests/{child['manifest']}",
                                         headers={"Accept": MANIFEST_TYPE})).read()
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": MANIFEST_TYPE, "digest": child["manifest"],
                                       "size": len(child_body),
                                       "platform": {"architecture": "amd64", "os": "linux"}}]})
    response = await client.put("/v2/protected/multi/manifests/multi", data=index.encode(),
                                headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    assert response.status == 201
    index_digest = sha256(index.encode())
    await scan(client, "protected/multi", {index_digest: report()}, tmp_path,
               scanner_results={child["manifest"]: report(HIGH)})
    await ecr_ok(client, "TagResource",
                 resourceArn="arn:aws:ecr:us-east-1:000000000000:repository/protected/multi",
                 tags=[{"Key": "berth:block-pulls-at-severity", "Value": "HIGH"}])
    assert (await client.get("/v2/protected/multi/manifests/multi",
                             headers={"Accept": MANIFEST_TYPE})).status == 403
    by_digest = await client.get(f"/v2/protected/multi/manifests/{child['manifest']}",
                                 headers={"Accept": MANIFEST_TYPE})
    assert by_digest.status == 403
    result = await ecr_ok(client, "BatchGetImage", repositoryName="protected/multi",
                          imageIds=[{"imageDigest": child["manifest"]}])
    assert [f["failureCode"] for f in result["failures"]] == ["ImageInaccessible"]
    assert index_digest in result["failures"][0]["failureReason"]
    status, body = await ecr_call(client, "GetDownloadUrlForLayer",
                                  repositoryName="protected/multi",
                                  layerDigest=sha256(own_layer))
    assert body["__type"] == "LayerInaccessibleException"
    assert (await client.get(f"/v2/protected/multi/blobs/{sha256(own_layer)}")).status == 403
