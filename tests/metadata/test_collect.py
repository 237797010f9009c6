"""Online GC on every backend: the rules, bounded transactions, and races with pushes (a blob
claimed during a collection survives; pushes keep flowing during a collection of 100,000
blobs)."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
import sqlalchemy as sa

from registry.gc import collect_garbage
from registry.metadata.database import query
from registry.metadata.store import SQLMetadataStore
from registry.oci.digests import parse_digest
from registry.storage.filesystem import FilesystemBlobStore
from tests.metadata import seed
from tests.metadata.counting import CountingDatabase

HOUR = 3600.0
NOW = 1_000_000.0
OLD = NOW - 2 * HOUR  # older than the grace window
FRESH = NOW - 60.0  # inside it
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def blobs(tmp_path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs-root")


def counted(store) -> tuple[SQLMetadataStore, CountingDatabase]:
    db = CountingDatabase(store.db)
    return SQLMetadataStore(db), db


def put_file(blobs: FilesystemBlobStore, digest: str, data: bytes = b"x") -> None:
    path = blobs.local_path(parse_digest(digest))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def has_file(blobs: FilesystemBlobStore, digest: str) -> bool:
    return blobs.local_path(parse_digest(digest)).exists()


def gc(store, blobs, *, batch: int = 500, dry_run: bool = False):
    return collect_garbage(store, blobs, grace_seconds=HOUR, upload_max_age_seconds=24 * HOUR,
                           now=NOW, batch=batch, dry_run=dry_run)


D = {name: seed.digest_of(name) for name in (
    "kept", "kept-config", "kept-layer", "untagged", "untagged-layer", "index", "child",
    "child-layer", "referrer", "fresh-untagged", "old-blob", "fresh-blob", "shared-layer",
    "dangling-link", "other-image")}


def registry(c) -> dict[str, int]:
    """A repository with one of every case; returns repository ids."""
    app, other = seed.repository(c, "app"), seed.repository(c, "other")
    for name in ("kept-config", "kept-layer", "untagged-layer", "child-layer", "shared-layer",
                 "dangling-link"):
        seed.link(c, app, D[name], now=OLD)
    seed.link(c, other, D["shared-layer"], now=OLD)
    seed.manifest(c, other, D["other-image"], now=OLD, tags=["v1"],
                  children=[(D["shared-layer"], "blob")])
    seed.manifest(c, app, D["kept"], now=OLD, tags=["v1"],
                  children=[(D["kept-config"], "blob"), (D["kept-layer"], "blob")])
    seed.manifest(c, app, D["untagged"], now=OLD, children=[(D["untagged-layer"], "blob"),
                                                           (D["shared-layer"], "blob")])
    seed.manifest(c, app, D["child"], now=OLD, children=[(D["child-layer"], "blob")])
    seed.manifest(c, app, D["index"], now=OLD, media_type=INDEX,
                  children=[(D["child"], "manifest")])
    seed.manifest(c, app, D["referrer"], now=OLD, subject=D["child"])
    seed.manifest(c, app, D["fresh-untagged"], now=FRESH)
    seed.claim(c, D["old-blob"], now=OLD)
    seed.claim(c, D["fresh-blob"], now=FRESH)
    return {"app": app, "other": other}


GONE_MANIFESTS = {"untagged", "index", "child", "referrer"}
GONE_BLOBS = {"untagged", "untagged-layer", "index", "child", "child-layer", "referrer",
              "old-blob", "dangling-link"}


async def test_collection_rules(store, blobs):
    await store.db.write(registry)
    for name in D:
        put_file(blobs, D[name])
    report = gc(store, blobs, batch=2)
    assert sorted(report.manifests) == sorted(f"app@{D[n]}" for n in GONE_MANIFESTS)
    assert sorted(report.blobs) == sorted(D[n] for n in GONE_BLOBS)
    # app loses the links of the deleted manifests' layers and the dangling one; other's
    # image keeps its link to the shared layer, which keeps the blob.
    assert report.links == 4
    for name, digest in D.items():
        assert has_file(blobs, digest) == (name not in GONE_BLOBS), name
        assert (await store.db.read(lambda c: seed.blob(c, digest)) is None) == \
            (name in GONE_BLOBS), name
    assert await store.db.read(lambda c: seed.links_of(c, D["shared-layer"])) == [2]
    again = gc(store, blobs)
    assert (again.manifests, again.links, again.blobs) == ([], 0, [])


async def test_dry_run_changes_nothing(store, blobs):
    await store.db.write(registry)
    for name in D:
        put_file(blobs, D[name])
    report = gc(store, blobs, dry_run=True)
    # Children freed by a deletion only show up once it really happens.
    assert sorted(report.manifests) == sorted(f"app@{D[n]}" for n in ("untagged", "index"))
    assert all(has_file(blobs, d) for d in D.values())
    assert (await store.db.read(lambda c: seed.blob(c, D["old-blob"]))) is not None


async def test_every_write_transaction_is_bounded_by_the_batch(store, blobs):
    counting, db = counted(store)
    digests = [seed.digest_of(f"garbage-{i}") for i in range(50)]
    await store.db.write(lambda c: seed.claim_many(c, digests, now=OLD))
    for digest in digests:
        put_file(blobs, digest)
    report = gc(counting, blobs, batch=7)
    assert sorted(report.blobs) == sorted(digests)
    assert db.writes and max(db.writes) <= 7
    assert sum(db.writes) == 50
    assert not any(has_file(blobs, d) for d in digests)


async def test_a_blob_claimed_after_it_was_listed_survives(store, store_factory, blobs):
    digest = seed.digest_of("listed, then pushed again")
    await store.db.write(lambda c: seed.claim(c, digest, now=OLD))
    put_file(blobs, digest)
    cutoff = NOW - HOUR
    [listed] = store.garbage_blobs_sync(cutoff, after=None, limit=10)
    assert listed.digest == digest
    # A push on another node claims it between the collector's read and its delete.
    await store_factory().db.write(lambda c: seed.claim(c, digest, now=NOW))
    removed = []
    assert store.delete_garbage_blobs_sync([digest], cutoff, removed.append) == []
    assert removed == [] and has_file(blobs, digest)
    assert await store.db.read(lambda c: seed.blob(c, digest)) == (1, NOW)


@query
def _waiting_on_locks(d):
    return sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND datname = current_database()")


def wait_until_blocked(store, claim: threading.Thread) -> None:
    """PostgreSQL: until the claim waits for a lock (deterministic, no fixed sleep). SQLite
    cannot show it; its single writer lock makes the claim wait by construction."""
    if store.db.dialect != "postgresql":
        return
    event = threading.Event()
    while not store.db.read_sync(lambda c: c.scalar(_waiting_on_locks)):
        assert claim.is_alive(), "the claim finished while the collector held the row"
        event.wait(0.01)


@pytest.mark.parametrize("orphan", [False, True], ids=["garbage row", "orphan file"])
async def test_a_claim_during_the_deleting_transaction_waits_then_keeps_its_blob(
        store, store_factory, blobs, orphan):
    digest = seed.digest_of("claimed while being deleted")
    if not orphan:
        await store.db.write(lambda c: seed.claim(c, digest, now=OLD))
    put_file(blobs, digest, b"old")
    pusher = store_factory()
    claimed = threading.Event()

    def push() -> None:
        # claim_blob, then publish: the new file appears only after the claim committed.
        pusher.db.write_sync(lambda c: seed.claim(c, digest, now=NOW))
        claimed.set()
        put_file(blobs, digest, b"new")

    thread = threading.Thread(target=push)

    def remove(d: str) -> None:
        thread.start()
        wait_until_blocked(store, thread)
        assert not claimed.is_set()
        blobs.delete(parse_digest(d))

    loop = asyncio.get_running_loop()
    if orphan:
        done = await loop.run_in_executor(None, store.delete_orphan_files_sync, [digest], remove)
    else:
        done = await loop.run_in_executor(None, store.delete_garbage_blobs_sync, [digest],
                                          NOW - HOUR, remove)
    await loop.run_in_executor(None, thread.join)
    assert [getattr(x, "digest", x) for x in done] == [digest]
    assert blobs.local_path(parse_digest(digest)).read_bytes() == b"new"
    assert await store.db.read(lambda c: seed.blob(c, digest)) == (1, NOW)


async def test_orphan_files_go_only_when_old_and_unrecorded(store, blobs):
    old, young, recorded = (seed.digest_of(n) for n in ("old orphan", "young", "recorded"))
    await store.db.write(lambda c: seed.claim(c, recorded, now=FRESH))
    for digest in (old, young, recorded):
        put_file(blobs, digest)
    for digest in (old, recorded):
        os.utime(blobs.local_path(parse_digest(digest)), (OLD, OLD))
    os.utime(blobs.local_path(parse_digest(young)), (FRESH, FRESH))
    report = gc(store, blobs)
    assert report.orphan_files == [old]
    assert not has_file(blobs, old) and has_file(blobs, young) and has_file(blobs, recorded)
    assert await store.db.read(lambda c: seed.blob(c, old)) is None  # no placeholder left


# 100,000 on SQLite (about 30 s here, most of it the file system); PostgreSQL's round trips
# make the same run twice as long, so it collects a tenth of that.
GC_BLOBS = {"sqlite": 100_000, "postgresql": 10_000}
PUSHES = 20


def put_tiny_files(blobs: FilesystemBlobStore, digests) -> None:
    """One byte per blob, fast: the blob directory is resolved once per prefix."""
    made: set = set()
    for digest in digests:
        path = blobs.local_path(parse_digest(digest))
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x")
        os.close(fd)


async def test_pushes_keep_flowing_during_a_collection_of_100k_blobs(store, store_factory,
                                                                     blobs):
    counting, db = counted(store)
    count = GC_BLOBS[store.db.dialect]
    digests = [seed.digest_of(f"unreferenced-{i}") for i in range(count)]
    await store.db.write(lambda c: seed.claim_many(c, digests, now=OLD))
    put_tiny_files(blobs, digests)
    pusher = store_factory()  # another node (SQLite: another connection, as another worker)
    repo = await pusher.db.write(lambda c: seed.repository(c, "busy"))
    first_batch, finished = threading.Event(), threading.Event()
    db.after_write = lambda rows: first_batch.set()

    def collect():
        try:
            return gc(counting, blobs, batch=500)
        finally:
            finished.set()

    loop = asyncio.get_running_loop()
    collection = loop.run_in_executor(None, collect)
    await loop.run_in_executor(None, first_batch.wait)
    during = []
    for i in range(PUSHES):
        layer, image = seed.digest_of(f"layer-{i}"), seed.digest_of(f"image-{i}")

        def push(c, layer=layer, image=image, i=i):
            seed.link(c, repo, layer, now=NOW)
            seed.manifest(c, repo, image, now=NOW, tags=[f"t{i}"], children=[(layer, "blob")])

        await pusher.db.write(push)
        during.append(not finished.is_set())
    report = await collection
    assert during == [True] * PUSHES  # every push committed while the collection ran
    assert len(report.blobs) == count
    assert max(db.writes) <= 500 and len(db.writes) >= count // 500
    assert not any(has_file(blobs, d) for d in digests[:: count // 100])
    for i in range(PUSHES):
        assert await pusher.db.read(lambda c, i=i: seed.has_manifest(
            c, repo, seed.digest_of(f"image-{i}")))
