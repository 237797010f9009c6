"""Two `berth serve` nodes on one PostgreSQL database give exactly the outcomes one SQLite
server gives: pushes of the same tags, immutable repositories and repository creations race
from both nodes at once (issue 9).

The nodes share the database and one data directory (shared filesystem storage, as on NFS;
upload sessions lock with flock), so what differs between the nodes is only which process
answers: the race is the metadata's. Authorization is off here; nodes that share one key file
and verify each other's tokens and access keys are tested in tests/multinode/test_shared_keys.py.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.support.images import Image, random_layer
from tests.support.oci_client import OciClient
from tests.support.server import BerthServer

AUTH_OFF = {"BERTH_AUTH__ENABLED": "false", "BERTH_SCANNER__ENABLED": "false"}


@pytest.fixture(scope="module")
def nodes(postgres, tmp_path_factory):
    url = postgres.create_database("nodes")
    env = {**AUTH_OFF, "BERTH_METADATA__URL": url, "BERTH_METADATA__UPGRADE": "auto"}
    shared = tmp_path_factory.mktemp("shared-data")
    started = []
    try:
        for name in ("a", "b"):
            started.append(BerthServer(tmp_path_factory.mktemp(f"node-{name}"), env=env,
                                       workers=2, extra_args=["--data", str(shared)]).start())
        yield started
    finally:
        for server in started:
            server.stop()


def _race(*calls):
    """Run the calls at the same moment (as near as threads get); return their results."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _image(seed: str) -> Image:
    return Image.build([random_layer(seed, 2048)])


def _push_blobs(client: OciClient, repo: str, image: Image) -> None:
    for blob in image.blobs():
        client.ensure_blob(repo, blob)


def _ecr(node):
    return boto3.client("ecr", endpoint_url=node.url, region_name="us-east-1",
                        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x",
                        config=BotoConfig(retries={"max_attempts": 1}))


def test_the_same_new_repository_pushed_from_both_nodes_is_one_repository(nodes):
    a, b = OciClient(nodes[0].url), OciClient(nodes[1].url)
    for round_ in range(5):
        repo = f"race/create-{round_}"
        first, second = _image(f"c{round_}a"), _image(f"c{round_}b")
        results = _race(lambda: a.push_image(repo, "one", first),
                        lambda: b.push_image(repo, "two", second))
        assert results == [None, None]
        assert sorted(a.tags(repo)) == ["one", "two"] == sorted(b.tags(repo))
    names = _ecr(nodes[0]).describe_repositories()["repositories"]
    created = [r["repositoryName"] for r in names if r["repositoryName"].startswith("race/create-")]
    assert sorted(created) == [f"race/create-{i}" for i in range(5)]


def test_one_tag_pushed_from_both_nodes_ends_on_one_of_the_two_images(nodes):
    a, b = OciClient(nodes[0].url), OciClient(nodes[1].url)
    repo = "race/mutable"
    for round_ in range(5):
        first, second = _image(f"m{round_}a"), _image(f"m{round_}b")
        _push_blobs(a, repo, first)
        _push_blobs(b, repo, second)
        responses = _race(lambda: a.put_manifest(repo, "latest", first.manifest),
                          lambda: b.put_manifest(repo, "latest", second.manifest))
        assert [r.status_code for r in responses] == [201, 201]
        seen = {c.head_manifest(repo, "latest").headers["Docker-Content-Digest"]
                for c in (a, b)}
        assert len(seen) == 1 and seen <= {first.digest, second.digest}
        assert a.tags(repo).count("latest") == 1


def test_an_immutable_tag_raced_from_both_nodes_is_written_once(nodes):
    a, b = OciClient(nodes[0].url), OciClient(nodes[1].url)
    _ecr(nodes[0]).create_repository(repositoryName="race/immutable",
                                      imageTagMutability="IMMUTABLE")
    repo = "race/immutable"
    # What one server answers when the tag exists (the single-SQLite-server outcome).
    base = _image("immutable-base")
    _push_blobs(a, repo, base)
    assert a.put_manifest(repo, "v0", base.manifest).status_code == 201
    other = _image("immutable-other")
    _push_blobs(a, repo, other)
    refusal = a.put_manifest(repo, "v0", other.manifest)
    assert refusal.status_code >= 400
    for round_ in range(5):
        first, second = _image(f"i{round_}a"), _image(f"i{round_}b")
        _push_blobs(a, repo, first)
        _push_blobs(b, repo, second)
        tag = f"v{round_ + 1}"
        responses = _race(lambda: a.put_manifest(repo, tag, first.manifest),
                          lambda: b.put_manifest(repo, tag, second.manifest))
        codes = sorted(r.status_code for r in responses)
        assert codes == [201, refusal.status_code], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code != 201)
        assert loser.json()["errors"][0]["code"] == refusal.json()["errors"][0]["code"]
        winner = first if responses[0].status_code == 201 else second
        assert a.head_manifest(repo, tag).headers["Docker-Content-Digest"] == winner.digest


def test_create_repository_raced_from_both_nodes_succeeds_once(nodes):
    from botocore.exceptions import ClientError

    def create(node):
        def call():
            try:
                _ecr(node).create_repository(repositoryName="race/ecr-create")
                return "created"
            except ClientError as exc:
                return exc.response["Error"]["Code"]

        return call

    assert sorted(_race(create(nodes[0]), create(nodes[1]))) == [
        "RepositoryAlreadyExistsException", "created"]
