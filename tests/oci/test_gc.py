"""Online garbage collection: what goes, what stays, and pushes during a collection."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from registry.appkeys import BLOBS, METADATA
from registry.gc import collect_garbage
from tests.oci.helpers import image_manifest, push_blob, push_image, sha256

HOUR = 3600.0


def run_gc(client, *, now_offset: float = 2 * HOUR, dry_run: bool = False, grace=HOUR):
    app = client.server.app
    return collect_garbage(app[METADATA], app[BLOBS], grace_seconds=grace,
                           upload_max_age_seconds=24 * HOUR, dry_run=dry_run,
                           now=time.time() + now_offset)


def blob_files(config) -> set[str]:
    return {p.name for p in (config.data_dir / "blobs").rglob("*") if p.is_file()}


async def test_untagged_image_and_its_blobs_are_collected(client, config):
    keep, _ = await push_image(client, "gc/app", "keep")
    drop, _ = await push_image(client, "gc/app", "drop")
    await client.delete("/v2/gc/app/manifests/drop")
    before = blob_files(config)
    report = run_gc(client)
    assert report.manifests == [f"gc/app@{drop}"]
    assert len(report.blobs) == 3  # its manifest, config and... layers differ per image
    assert drop.split(":")[1] not in blob_files(config)
    assert blob_files(config) < before
    assert (await client.get(f"/v2/gc/app/manifests/{drop}")).status == 404
    resp = await client.get("/v2/gc/app/manifests/keep")
    assert resp.status == 200


async def test_dry_run_deletes_nothing(client, config):
    drop, _ = await push_image(client, "gc/dry", None)
    before = blob_files(config)
    report = run_gc(client, dry_run=True)
    assert report.manifests == [f"gc/dry@{drop}"]
    assert blob_files(config) == before
    assert (await client.get(f"/v2/gc/dry/manifests/{drop}")).status == 200


async def test_grace_window_protects_fresh_uploads(client, config):
    digest = await push_blob(client, "gc/fresh", b"layer for a manifest not pushed yet")
    untagged, _ = await push_image(client, "gc/fresh", None)
    report = run_gc(client, now_offset=0)
    assert report.manifests == [] and report.blobs == []
    assert (await client.get(f"/v2/gc/fresh/blobs/{digest}")).status == 200
    report = run_gc(client)
    assert digest in report.blobs
    assert f"gc/fresh@{untagged}" in report.manifests


async def test_index_children_and_referrers_live_with_their_parent(client, config):
    child, child_bytes = await push_image(client, "gc/idx", None)
    import json
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": child, "size": len(child_bytes)}]}).encode()
    resp = await client.put("/v2/gc/idx/manifests/v1", data=index,
                            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    assert resp.status == 201
    referrer, _ = await push_image(client, "gc/idx", None, subject={
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child,
        "size": len(child_bytes)})
    assert run_gc(client).manifests == []
    await client.delete("/v2/gc/idx/manifests/v1")
    report = run_gc(client)
    # Index first, then the child it freed, then the referrer whose subject went away.
    assert set(report.manifests) == {f"gc/idx@{sha256(index)}", f"gc/idx@{child}",
                                     f"gc/idx@{referrer}"}


async def test_shared_blob_survives_while_another_repository_uses_it(client, config):
    shared = await push_blob(client, "gc/one", b"shared")
    await push_blob(client, "gc/two", b"shared")
    cfg = await push_blob(client, "gc/two", b"{}")
    manifest = image_manifest(b"{}", [b"shared"])
    resp = await client.put("/v2/gc/two/manifests/v1", data=manifest, headers={
        "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 201
    await client.delete(f"/v2/gc/one/blobs/{shared}")
    report = run_gc(client)
    assert shared not in report.blobs and cfg not in report.blobs
    assert (await client.get(f"/v2/gc/two/blobs/{shared}")).status == 200


async def test_orphan_file_from_a_crash_is_swept(client, config):
    data = b"renamed into place, crashed before commit"
    digest = sha256(data)
    path = config.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time() - 2 * HOUR
    os.utime(path, (old, old))
    report = run_gc(client, now_offset=0)
    assert report.orphan_files == [digest]
    assert not path.exists()


async def test_stale_upload_sessions_are_removed(client, config):
    resp = await client.post("/v2/gc/up/blobs/uploads/")
    location = resp.headers["Location"]
    report = run_gc(client, now_offset=25 * HOUR)
    assert report.uploads == [location.rsplit("/", 1)[1]]
    assert (await client.get(location)).status == 404


async def test_pushes_during_gc_all_pull_back(client, config):
    # Garbage old enough to collect, then a collector looping while 12 images are pushed.
    for i in range(5):
        await push_image(client, "gc/busy", None)
    await asyncio.sleep(2.2)
    stop = threading.Event()
    reports = []

    def collector():
        while not stop.is_set():
            reports.append(run_gc(client, now_offset=0, grace=2.0))

    thread = threading.Thread(target=collector)
    thread.start()
    try:
        pushed = await asyncio.gather(*[push_image(client, "gc/busy", f"t{i}", layers=3)
                                        for i in range(12)])
    finally:
        stop.set()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert sum(len(r.manifests) for r in reports) >= 5
    for i, (digest, manifest) in enumerate(pushed):
        resp = await client.get(f"/v2/gc/busy/manifests/t{i}")
        assert await resp.read() == manifest
        import json
        for layer in json.loads(manifest)["layers"] + [json.loads(manifest)["config"]]:
            blob = await client.get(f"/v2/gc/busy/blobs/{layer['digest']}")
            assert blob.status == 200
            assert sha256(await blob.read()) == layer["digest"]
