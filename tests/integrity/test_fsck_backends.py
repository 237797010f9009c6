"""`berth fsck` reads the metadata database the config names: SQLite in the data directory or
PostgreSQL at `[metadata] url` (env BERTH_METADATA__URL)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys

import pytest

from registry.config import load_config
from registry.metadata.factory import open_store
from registry.oci.digests import parse_digest
from registry.storage.filesystem import FilesystemBlobStore
from tests.metadata import seed


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_fsck_walks_the_tags_of_either_backend(tmp_path, request, backend):
    url = request.getfixturevalue("postgres").create_database("fsck") \
        if backend == "postgresql" else ""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = load_config(None, environ={}, overrides={
        "data_dir": str(data_dir), "metadata.url": url, "metadata.upgrade": "auto"})
    layer, lost = b"a layer on disk", b"a layer whose file is gone"
    image = json.dumps({"layers": [digest(layer), digest(lost)]}).encode()
    store = open_store(config)

    def fill(c) -> None:
        repo = seed.repository(c, "lib/app")
        seed.link(c, repo, digest(layer), now=1.0, size=len(layer))
        seed.link(c, repo, digest(lost), now=1.0, size=len(lost))
        seed.manifest(c, repo, digest(image), now=1.0, tags=["v1"],
                      children=[(digest(layer), "blob"), (digest(lost), "blob")])

    try:
        store.db.write_sync(fill)
    finally:
        asyncio.run(store.close())
    blobs = FilesystemBlobStore(data_dir)
    for data in (layer, image):
        path = blobs.local_path(parse_digest(digest(data)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    env = {**os.environ, "BERTH_METADATA__URL": url}
    done = subprocess.run([sys.executable, "-m", "registry", "fsck", "--data", str(data_dir),
                           "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["blobsChecked"] == 2 and report["corrupt"] == []
    [missing] = report["missing"]
    assert missing["digest"] == digest(lost)
    assert missing["detail"] == "recorded, but its file is missing"
    assert missing["tags"] == ["000000000000/lib/app:v1"]
