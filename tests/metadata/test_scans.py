"""Scan results and scan requests, on every backend: the RequestScan write, start and finish
under races between nodes, and the vulnerability-DB announcement made exactly once."""

from __future__ import annotations

import asyncio

import pytest

from registry.metadata.scans import STALE_REQUEST_SECONDS
from registry.metadata.writes import NewJob, RequestScan, apply
from tests.metadata import seed

JOB = "scan.image"
IMAGE = seed.digest_of("image")


def request(repo: int, digest: str = IMAGE, *, key: str | None = None) -> RequestScan:
    return RequestScan(repo, digest, NewJob(JOB, {"digest": digest}, priority=10,
                                            idempotency_key=key))


async def new_repo(store, name: str = "app") -> int:
    return await store.db.write(lambda c: seed.repository(c, name))


async def apply_at(store, writes, now: float):
    return await store.db.write(lambda c: apply(c, writes, now=now))


async def scan_jobs(store) -> list:
    return await store.db.read(lambda c: seed.jobs(c, JOB))


async def finish(store, repo: int, digest: str = IMAGE, *, status: str = "COMPLETE",
                 db_updated_at: float | None = 50.0, findings=(), counts=None) -> bool:
    return await store.finish_scan(
        repo, digest, status=status, description="done", scanner="trivy",
        scanner_version="0.50", db_updated_at=db_updated_at,
        severity_counts=counts or {}, findings=list(findings), os_family="debian",
        os_name="12")


async def test_a_request_marks_the_scan_in_progress_and_queues_its_job(store):
    repo = await new_repo(store)
    [job_id] = await apply_at(store, [request(repo)], 100.0)
    assert job_id is not None
    scan = await store.get_scan(repo, IMAGE)
    assert (scan.status, scan.requested_at, scan.scan_type) == ("IN_PROGRESS", 100.0, "BASIC")
    assert await scan_jobs(store) == [(JOB, {"digest": IMAGE}, 10)]


# (second request's offset from the first, whether the first finished, new job expected)
REQUESTS = [
    ("a request joins the scan in flight", 10.0, False, False),
    ("after the scan finished, a request is a new scan", 10.0, True, True),
    ("a scan in progress past the stale bound lost its job: a new request restarts it",
     STALE_REQUEST_SECONDS + 1, False, True),
]


@pytest.mark.parametrize("why,later,finished,queued", REQUESTS, ids=[r[0] for r in REQUESTS])
async def test_second_request(store, why, later, finished, queued):
    repo = await new_repo(store)
    await apply_at(store, [request(repo)], 100.0)
    if finished:
        assert await finish(store, repo)
    [second] = await apply_at(store, [request(repo)], 100.0 + later)
    assert (second is not None) == queued
    assert len(await scan_jobs(store)) == (2 if queued else 1)
    scan = await store.get_scan(repo, IMAGE)
    assert scan.status == "IN_PROGRESS"
    assert scan.requested_at == (100.0 + later if queued else 100.0)


async def test_racing_requests_from_two_nodes_queue_one_job_per_image(store, store_factory):
    other = store_factory()
    repo = await new_repo(store)
    digests = [seed.digest_of(f"image-{i}") for i in range(8)]
    for digest in digests:
        results = await asyncio.gather(apply_at(store, [request(repo, digest)], 100.0),
                                       apply_at(other, [request(repo, digest)], 100.0))
        assert sorted(r[0] is None for r in results) == [False, True]
    assert len(await scan_jobs(store)) == len(digests)


async def test_start_scan_honours_the_interval_and_joins_a_scan_in_flight(store):
    repo = await new_repo(store)
    assert await store.start_scan(request(repo), min_interval=3600)
    assert not await store.start_scan(request(repo), min_interval=3600)
    # No interval (ENHANCED): the request joins the scan in flight, no second job.
    assert await store.start_scan(request(repo), min_interval=None)
    assert len(await scan_jobs(store)) == 1


async def test_racing_start_scans_on_two_nodes_start_one(store, store_factory):
    other = store_factory()
    repo = await new_repo(store)
    started = await asyncio.gather(*[s.start_scan(request(repo), min_interval=3600)
                                     for s in (store, other)])
    assert sorted(started) == [False, True]
    assert len(await scan_jobs(store)) == 1


async def test_finish_records_once_and_only_a_requested_scan(store, store_factory):
    repo = await new_repo(store)
    assert not await finish(store, repo)  # never requested
    assert await store.get_scan(repo, IMAGE) is None
    await apply_at(store, [request(repo)], 100.0)
    findings = [{"vulnerability_id": "CVE-1", "package_name": "openssl", "severity": "HIGH"}]
    other = store_factory()
    done = await asyncio.gather(finish(store, repo, findings=findings, counts={"HIGH": 1}),
                                finish(other, repo, findings=findings, counts={"HIGH": 1}))
    assert sorted(done) == [False, True]  # a job run twice records its outcome once
    scan = await store.get_scan(repo, IMAGE)
    assert (scan.status, scan.findings, scan.severity_counts) == ("COMPLETE", findings,
                                                                  {"HIGH": 1})
    assert (scan.scanner, scan.db_updated_at, scan.os_family) == ("trivy", 50.0, "debian")
    assert scan.completed_at is not None
    summaries = await store.scan_summaries(repo, [IMAGE, "sha256:" + "0" * 64])
    assert list(summaries) == [IMAGE]  # only the page's images, only those with a scan
    summary = summaries[IMAGE]
    assert (summary.status, summary.findings, summary.severity_counts) == ("COMPLETE", [],
                                                                           {"HIGH": 1})
    assert await store.scan_summaries(repo, []) == {}


async def test_parent_scans_list_the_referencing_manifests_with_their_scans(store):
    repo = await new_repo(store)
    layer, scanned, unscanned = (seed.digest_of(n) for n in ("layer", "scanned", "unscanned"))

    def fill(c):
        seed.link(c, repo, layer, now=1.0)
        for digest in (scanned, unscanned):
            seed.manifest(c, repo, digest, now=1.0, children=[(layer, "blob")])

    await store.db.write(fill)
    await apply_at(store, [request(repo, scanned)], 100.0)
    await finish(store, repo, scanned, counts={"LOW": 2})
    parents = await store.parent_scans(repo, layer, kind="blob")
    assert parents == sorted([(scanned, "COMPLETE", {"LOW": 2}), (unscanned, None, {})])
    assert await store.parent_scans(repo, layer, kind="manifest") == []


async def test_scans_older_than_a_db_are_the_finished_ones_made_with_an_older_db(store):
    repo = await new_repo(store)
    old, new, unknown, running = (seed.digest_of(n) for n in ("old", "new", "unknown", "run"))
    await apply_at(store, [request(repo, d) for d in (old, new, unknown, running)], 100.0)
    await finish(store, repo, old, db_updated_at=10.0)
    await finish(store, repo, new, db_updated_at=30.0)
    await finish(store, repo, unknown, status="FAILED", db_updated_at=None)
    assert sorted(await store.scans_older_than_db(20.0)) == sorted([(repo, old),
                                                                     (repo, unknown)])


def rescans(repo: int, db: str, digests) -> list[RequestScan]:
    return [request(repo, d, key=f"rescan:{db}:{repo}:{d}") for d in digests]


async def test_a_new_db_is_announced_exactly_once_across_nodes(store, store_factory):
    nodes = [store, store_factory(), store_factory()]
    repo = await new_repo(store)
    images = [seed.digest_of(f"image-{i}") for i in range(3)]
    for round_, db in enumerate(["sha256:db1", "sha256:db2", "sha256:db3"]):
        for digest in images:  # each round's rescans find the images scanned
            if (await store.get_scan(repo, digest) or None) is not None:
                await finish(store, repo, digest)
        won = await asyncio.gather(*[
            node.announce_scanner_db(account="000000000000", setting="SCANNER_DB_DIGEST",
                                     digest=db, updated_at=1000.0 + round_,
                                     rescans=rescans(repo, db, images)) for node in nodes])
        assert sorted(won) == [False, False, True], db
        assert len(await scan_jobs(store)) == len(images) * (round_ + 1)


async def test_an_announced_or_older_db_is_not_announced_again(store):
    repo = await new_repo(store)

    async def announce(db: str, at: float) -> bool:
        return await store.announce_scanner_db(
            account="000000000000", setting="SCANNER_DB_DIGEST", digest=db, updated_at=at,
            rescans=rescans(repo, db, [IMAGE]))

    assert await announce("sha256:new", 2000.0)
    await finish(store, repo)
    assert not await announce("sha256:new", 2000.0)
    assert not await announce("sha256:older", 1000.0)
    assert len(await scan_jobs(store)) == 1
