"""Eight clients push at once images that share layers, into one shared repository and into
repositories of their own; afterwards every manifest and blob pulls back byte-identical.

Half the clients HEAD before uploading (docker's way), half upload every blob blindly, so the
same blob is uploaded by several sessions at the same moment (spec: both proceed, one copy is
kept). Half upload monolithically, half in 1 MiB PATCH chunks.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.support.images import Image, Layer, busybox_layer, random_layer
from tests.support.oci_client import OciClient, expect

pytestmark = [pytest.mark.clients, pytest.mark.slow]

CLIENTS = 8
MiB = 1 << 20


@dataclass(frozen=True)
class Push:
    number: int
    repo: str
    tag: str
    image: Image

    @property
    def check_first(self) -> bool:
        return self.number % 2 == 0

    @property
    def chunk_size(self) -> int | None:
        return MiB if self.number % 4 >= 2 else None


def plan(base: str) -> list[Push]:
    shared: list[Layer] = [
        busybox_layer(),
        random_layer(f"{base}-shared-big", 16 * MiB),
        random_layer(f"{base}-shared-small", 300 * 1024),
    ]
    pushes = []
    for number in range(CLIENTS):
        unique = random_layer(f"{base}-unique-{number}", 512 * 1024)
        image = Image.build([*shared, unique], labels={"client": str(number)})
        if number < CLIENTS // 2:
            pushes.append(Push(number, f"{base}/shared", f"client-{number}", image))
        else:
            pushes.append(Push(number, f"{base}/own-{number}", "v1", image))
    return pushes


def push(url: str, job: Push, barrier: threading.Barrier) -> None:
    client = OciClient(url)
    blobs = job.image.blobs()
    random.Random(job.number).shuffle(blobs)  # collide on different blobs at different times
    barrier.wait(timeout=30)
    for blob in blobs:
        if job.check_first:
            client.ensure_blob(job.repo, blob, chunk_size=job.chunk_size)
        else:
            client.push_blob(job.repo, blob, chunk_size=job.chunk_size)
    client.push_manifest(job.repo, job.tag, job.image.manifest)


@pytest.fixture(params=[None, 2], ids=["shared-server", "two-workers"])
def server(request, berth, fresh_berth):
    """The session's server, and a fresh one whose two worker processes share the data dir."""
    return berth if request.param is None else fresh_berth(workers=request.param)


def test_eight_clients_push_shared_layers_and_pull_back_identical(server, repo):
    jobs = plan(repo)
    barrier = threading.Barrier(CLIENTS)
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(push, server.url, job, barrier) for job in jobs]
        errors = [f.exception(timeout=240) for f in futures]
    failed = [(job.number, error) for job, error in zip(jobs, errors) if error is not None]
    assert not failed, "\n\n".join(f"client {n}: {e}" for n, e in failed)

    client = OciClient(server.url)
    for job in jobs:
        manifest = expect(client.get_manifest(job.repo, job.tag), 200)
        assert manifest.content == job.image.manifest.data, f"client {job.number} manifest"
        assert manifest.headers["Docker-Content-Digest"] == job.image.digest
        by_digest = expect(client.get_manifest(job.repo, job.image.digest), 200)
        assert by_digest.content == job.image.manifest.data
        for blob in job.image.blobs():
            assert client.blob_sha256(job.repo, blob.digest) == (blob.digest, blob.size), (
                f"client {job.number}: {job.repo}@{blob.digest}"
            )

    shared_tags = sorted(job.tag for job in jobs if job.repo.endswith("/shared"))
    assert sorted(client.tags(f"{repo}/shared")) == shared_tags
    # Whoever won each race, the shared layers sit at their content address, intact.
    for layer in jobs[0].image.layers[:3]:
        path = server.blob_path(layer.digest)
        assert path.read_bytes() == layer.data, f"{layer.digest} at {path}"
