"""Small helpers to push content over the OCI API in protocol tests."""

from __future__ import annotations

import hashlib
import json
import os


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


async def push_blob(client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    resp = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data)
    assert resp.status == 201, await resp.text()
    return digest


def image_manifest(config: bytes, layers: list[bytes], **extra) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer), "size": len(layer)} for layer in layers],
    }
    document.update(extra)
    return json.dumps(document, indent=1).encode()


async def push_image(client, repo: str, tag: str | None = "latest", *, layers: int = 2,
                     **extra) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer_data = [os.urandom(1000 + i) for i in range(layers)]
    for blob in [config, *layer_data]:
        await push_blob(client, repo, blob)
    manifest = image_manifest(config, layer_data, **extra)
    digest = sha256(manifest)
    resp = await client.put(f"/v2/{repo}/manifests/{tag or digest}", data=manifest,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 201, await resp.text()
    return digest, manifest


async def error_code(resp) -> str:
    body = await resp.json(content_type=None)
    return body["errors"][0]["code"]
