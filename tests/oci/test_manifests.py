"""Manifests, tags, referrers and catalog (reference A.4–A.6)."""

from __future__ import annotations

import json

import pytest

from tests.oci.helpers import error_code, push_blob, push_image, sha256

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def _index(children: list[tuple[str, int]], media_type: str = OCI_INDEX, **extra) -> bytes:
    child_type = ("application/vnd.oci.image.manifest.v1+json" if media_type == OCI_INDEX
                  else DOCKER_V2)
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "manifests": [{"mediaType": child_type, "digest": d, "size": s,
                          "platform": {"architecture": "amd64", "os": "linux"}}
                         for d, s in children]}
    doc.update(extra)
    return json.dumps(doc).encode()


async def test_index_and_nested_index(client):
    d1, m1 = await push_image(client, "multi", None)
    d2, m2 = await push_image(client, "multi", None)
    index = _index([(d1, len(m1)), (d2, len(m2))])
    resp = await client.put(f"/v2/multi/manifests/{sha256(index)}", data=index,
                            headers={"Content-Type": OCI_INDEX})
    assert resp.status == 201
    nested = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_INDEX, "digest": sha256(index), "size": len(index)}]}).encode()
    resp = await client.put("/v2/multi/manifests/nested", data=nested,
                            headers={"Content-Type": OCI_INDEX})
    assert resp.status == 201
    resp = await client.get("/v2/multi/manifests/nested")
    assert await resp.read() == nested
    assert resp.headers["Content-Type"] == OCI_INDEX


async def test_docker_schema2_and_manifest_list(client):
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"docker layer"
    await push_blob(client, "dock", config)
    await push_blob(client, "dock", layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": sha256(layer), "size": len(layer)}]}).encode()
    resp = await client.put("/v2/dock/manifests/v1", data=manifest,
                            headers={"Content-Type": DOCKER_V2})
    assert resp.status == 201
    listing = _index([(sha256(manifest), len(manifest))], DOCKER_LIST)
    resp = await client.put("/v2/dock/manifests/list", data=listing,
                            headers={"Content-Type": DOCKER_LIST})
    assert resp.status == 201
    resp = await client.get("/v2/dock/manifests/list")
    assert resp.headers["Content-Type"] == DOCKER_LIST
    assert await resp.read() == listing


async def test_foreign_layers_and_unknown_fields(client):
    config = b"{}"
    await push_blob(client, "foreign", config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "x-custom": {"kept": True},
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(config),
                   "size": 2, "data": "e30="},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                    "digest": sha256(b"elsewhere"), "size": 9,
                    "urls": ["https://example.invalid/layer"]}]}).encode()
    resp = await client.put("/v2/foreign/manifests/v1", data=manifest,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 201
    assert await (await client.get("/v2/foreign/manifests/v1")).read() == manifest


async def test_subject_may_point_at_nothing_yet_and_referrers(client):
    image_digest, image = await push_image(client, "refs", "v1")
    artifact_config = b"{}"
    await push_blob(client, "refs", artifact_config)
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": image_digest, "size": len(image)}

    async def push_artifact(artifact_type: str, annotation: str, subject_doc) -> str:
        doc = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": sha256(artifact_config), "size": 2},
            "layers": [], "subject": subject_doc,
            "annotations": {"org.example.note": annotation}}).encode()
        resp = await client.put(f"/v2/refs/manifests/{sha256(doc)}", data=doc,
                                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert resp.status == 201, await resp.text()
        assert resp.headers["OCI-Subject"] == subject_doc["digest"]
        return sha256(doc)

    sbom = await push_artifact("application/vnd.example.sbom.v1", "sbom", subject)
    sig = await push_artifact("application/vnd.example.sig.v1", "sig", subject)
    dangling = dict(subject, digest=sha256(b"not pushed yet"))
    await push_artifact("application/vnd.example.sbom.v1", "early", dangling)

    resp = await client.get(f"/v2/refs/referrers/{image_digest}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in resp.headers
    body = await resp.json(content_type=None)
    assert body["mediaType"] == OCI_INDEX
    found = {d["digest"]: d for d in body["manifests"]}
    assert set(found) == {sbom, sig}
    assert found[sbom]["artifactType"] == "application/vnd.example.sbom.v1"
    assert found[sbom]["annotations"] == {"org.example.note": "sbom"}

    resp = await client.get(f"/v2/refs/referrers/{image_digest}",
                            params={"artifactType": "application/vnd.example.sig.v1"})
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in (await resp.json(content_type=None))["manifests"]] == [sig]

    resp = await client.get(f"/v2/refs/referrers/{sha256(b'unknown subject')}")
    assert resp.status == 200
    assert (await resp.json(content_type=None))["manifests"] == []
    resp = await client.get("/v2/refs/referrers/sha256:nothex")
    assert resp.status == 400


async def test_multi_tag_put(client):
    digest, manifest = await push_image(client, "tags/multi", None)
    resp = await client.put(f"/v2/tags/multi/manifests/{digest}?tag=1.2.3&tag=1.2&tag=latest",
                            data=manifest,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 201
    assert resp.headers.getall("OCI-Tag") == ["1.2.3", "1.2", "latest"]
    resp = await client.get("/v2/tags/multi/tags/list")
    assert (await resp.json())["tags"] == ["1.2", "1.2.3", "latest"]


async def test_multi_tag_put_is_atomic(client):
    digest, manifest = await push_image(client, "tags/atomic", None)
    resp = await client.put(f"/v2/tags/atomic/manifests/{digest}?tag=good&tag=bad+tag",
                            data=manifest,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 400
    assert (await (await client.get("/v2/tags/atomic/tags/list")).json())["tags"] == []


async def test_tag_list_pagination(client):
    digest, manifest = await push_image(client, "paged", None)
    tags = ["b", "A", "a", "c1", "c10", "c2", "Z"]
    for tag in tags:
        resp = await client.put(f"/v2/paged/manifests/{tag}", data=manifest,
                                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert resp.status == 201
    resp = await client.get("/v2/paged/tags/list")
    assert (await resp.json())["tags"] == sorted(tags)
    resp = await client.get("/v2/paged/tags/list?n=3")
    assert (await resp.json())["tags"] == ["A", "Z", "a"]
    assert resp.headers["Link"] == '</v2/paged/tags/list?n=3&last=a>; rel="next"'
    resp = await client.get("/v2/paged/tags/list?n=3&last=a")
    assert (await resp.json())["tags"] == ["b", "c1", "c10"]
    resp = await client.get("/v2/paged/tags/list?n=10&last=c10")
    assert (await resp.json())["tags"] == ["c2"]
    assert "Link" not in resp.headers
    resp = await client.get("/v2/paged/tags/list?n=0")
    assert (await resp.json())["tags"] == []
    assert "Link" not in resp.headers
    resp = await client.get("/v2/paged/tags/list?last=b")
    assert (await resp.json())["tags"] == ["c1", "c10", "c2"]


async def test_catalog_pagination(client):
    for name in ["zeta", "alpha", "mid/one", "mid/two"]:
        await push_blob(client, name, b"x")
    resp = await client.get("/v2/_catalog")
    assert (await resp.json())["repositories"] == ["alpha", "mid/one", "mid/two", "zeta"]
    resp = await client.get("/v2/_catalog?n=2")
    assert (await resp.json())["repositories"] == ["alpha", "mid/one"]
    assert resp.headers["Link"] == '</v2/_catalog?n=2&last=mid%2Fone>; rel="next"'
    resp = await client.get("/v2/_catalog?n=2&last=mid/one")
    assert (await resp.json())["repositories"] == ["mid/two", "zeta"]


async def test_delete_by_tag_keeps_manifest(client):
    digest, _ = await push_image(client, "deltag", "v1")
    resp = await client.delete("/v2/deltag/manifests/v1")
    assert resp.status == 202
    assert (await client.get("/v2/deltag/manifests/v1")).status == 404
    assert (await client.get(f"/v2/deltag/manifests/{digest}")).status == 200
    assert (await (await client.get("/v2/deltag/tags/list")).json())["tags"] == []


async def test_delete_by_digest_removes_tags_and_referrer_edges(client):
    digest, _ = await push_image(client, "deldig", "v1")
    resp = await client.delete(f"/v2/deldig/manifests/{digest}")
    assert resp.status == 202
    for ref in ("v1", digest):
        resp = await client.get(f"/v2/deldig/manifests/{ref}")
        assert resp.status == 404
        assert await error_code(resp) == "MANIFEST_UNKNOWN"
    resp = await client.delete(f"/v2/deldig/manifests/{digest}")
    assert resp.status == 404


async def test_tag_moves_to_new_manifest(client):
    first, _ = await push_image(client, "moving", "latest")
    second, _ = await push_image(client, "moving", "latest")
    resp = await client.get("/v2/moving/manifests/latest")
    assert resp.headers["Docker-Content-Digest"] == second != first


async def test_same_manifest_pushed_twice(client):
    digest, manifest = await push_image(client, "twice", "v1")
    resp = await client.put("/v2/twice/manifests/v1", data=manifest,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 201
    assert resp.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("media_type", [None, "application/vnd.oci.image.manifest.v1+json; charset=utf-8"])
async def test_content_type_parameters_and_absence(client, media_type):
    config = b"{}"
    await push_blob(client, "ctype", config)
    doc = json.dumps({"schemaVersion": 2,
                      "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                 "digest": sha256(config), "size": 2}, "layers": []}).encode()
    headers = {"Content-Type": media_type} if media_type else {}
    resp = await client.put("/v2/ctype/manifests/v1", data=doc, headers=headers)
    assert resp.status == 201
    resp = await client.get("/v2/ctype/manifests/v1")
    assert resp.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
