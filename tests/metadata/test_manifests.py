"""Contract: blobs and links, manifests, tags, referrers, deletes that respect references,
typed writes in the push transaction. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import time

import pytest
import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import query
from registry.metadata.models import (
    ManifestRecord, MissingReferencesError, Reference, StillReferencedError,
)
from registry.metadata.writes import NewJob

ACCOUNT = "123456789012"
INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "application/vnd.oci.image.manifest.v1+json"


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


async def blob(store, repo, name: str, size: int = 10) -> str:
    await store.claim_blob(d(name), size)
    await store.link_blob(repo.id, d(name), size)
    return d(name)


async def image(store, repo, name: str, tags=(), *, layers=("config",), **fields):
    refs = tuple([Reference(await blob(store, repo, layer), "blob") for layer in layers])
    record = ManifestRecord(d(name), IMAGE, 100, references=refs, **fields)
    await store.claim_blob(record.digest, record.size)
    await store.put_manifest(repo.id, record, list(tags), [])
    return record


async def index(store, repo, name: str, children, tags=()):
    record = ManifestRecord(d(name), INDEX, 50, references=tuple(
        Reference(c.digest, "manifest") for c in children))
    await store.claim_blob(record.digest, record.size)
    await store.put_manifest(repo.id, record, list(tags), [])
    return record


@pytest.fixture
async def repo(store):
    return await store.ensure_repository(ACCOUNT, "team/app")


async def test_blobs_are_readable_only_through_their_repository_link(store, repo):
    other = await store.ensure_repository(ACCOUNT, "team/other")
    digest = await blob(store, repo, "layer", 1234)
    assert await store.linked_blob_size(repo.id, digest) == 1234
    assert await store.linked_blob_size(other.id, digest) is None
    assert await store.blob_link_age(repo.id, digest) == pytest.approx(0, abs=5)
    assert await store.blob_link_age(other.id, digest) is None
    await store.touch_blob_link(repo.id, digest)


async def test_mount_links_only_what_the_source_holds(store, repo):
    target = await store.ensure_repository(ACCOUNT, "team/target")
    digest = await blob(store, repo, "layer", 77)
    assert await store.mount_blob(repo.id, target.id, d("absent")) is None
    assert await store.linked_blob_size(target.id, d("absent")) is None
    assert await store.mount_blob(repo.id, target.id, digest) == 77
    assert await store.linked_blob_size(target.id, digest) == 77


async def test_a_claimed_blob_is_recorded_but_not_linked(store, repo):
    await store.claim_blob(d("claimed"), 5)
    rows = await store.db.read(lambda c: c.all(_blob_rows, digest=d("claimed")))
    assert [r[0] for r in rows] == [5]
    assert await store.linked_blob_size(repo.id, d("claimed")) is None


@query
def _blob_rows(dialect):
    return sa.select(t.blobs.c.size).where(t.blobs.c.digest == sa.bindparam("digest"))


async def test_put_manifest_needs_every_reference_in_the_repository(store, repo):
    other = await store.ensure_repository(ACCOUNT, "team/other")
    await blob(store, other, "elsewhere")
    child = await image(store, repo, "child", ["c"])
    record = ManifestRecord(d("m"), IMAGE, 10, references=(
        Reference(d("elsewhere"), "blob"), Reference(child.digest, "manifest"),
        Reference(d("nothing"), "manifest")))
    for check in (store.check_manifest(repo.id, record, ["v1"]),
                  store.put_manifest(repo.id, record, ["v1"], [])):
        with pytest.raises(MissingReferencesError) as raised:
            await check
        assert {r.digest for r in raised.value.missing} == {d("elsewhere"), d("nothing")}
    assert await store.get_manifest(repo.id, d("m")) is None
    assert await store.resolve_tag(repo.id, "v1") is None


async def test_put_manifest_stores_record_tags_and_moves_tags(store, repo):
    first = await image(store, repo, "one", ["latest", "v1"], artifact_type="x/y",
                        annotations={"k": "v"})
    got = await store.get_manifest(repo.id, first.digest)
    assert (got.digest, got.media_type, got.size, got.artifact_type, got.annotations) == (
        first.digest, IMAGE, 100, "x/y", {"k": "v"})
    assert (await store.resolve_tag(repo.id, "latest")).digest == first.digest
    second = await image(store, repo, "two", ["latest"])
    assert (await store.resolve_tag(repo.id, "latest")).digest == second.digest
    assert await store.tags_for(repo.id, first.digest) == ["v1"]
    assert await store.resolve_tag(repo.id, "nope") is None


async def test_check_tag_sees_the_current_digest_and_can_refuse(store, repo):
    await image(store, repo, "one", ["v1"])
    seen = []

    class Refused(Exception):
        pass

    def check(tag, current):
        seen.append((tag, current))
        if current is not None:
            raise Refused(tag)

    record = ManifestRecord(d("two"), IMAGE, 1)
    await store.claim_blob(record.digest, 1)
    with pytest.raises(Refused):
        await store.put_manifest(repo.id, record, ["new", "v1"], [], check_tag=check)
    assert seen == [("new", None), ("v1", d("one"))]
    assert await store.get_manifest(repo.id, record.digest) is None
    assert await store.resolve_tag(repo.id, "new") is None


TAGS = ["B", "a", "_", "é", "v1.0", "V1", "0", "a-b"]


async def test_tags_page_in_byte_order_on_every_backend(store, repo):
    record = await image(store, repo, "one", TAGS)
    expected = sorted(TAGS, key=lambda s: s.encode())
    assert await store.list_tags(repo.id, last=None, limit=None) == expected
    pages, last = [], None
    while page := await store.list_tags(repo.id, last=last, limit=3):
        pages.append(page)
        last = page[-1]
    assert [tag for p in pages for tag in p] == expected
    assert await store.tags_for(repo.id, record.digest) == expected


async def test_referrers_by_subject_and_artifact_type(store, repo):
    subject = await image(store, repo, "subject", ["v1"])
    sbom = await image(store, repo, "sbom", subject_digest=subject.digest,
                       artifact_type="application/sbom")
    sig = await image(store, repo, "sig", subject_digest=subject.digest,
                      artifact_type="application/sig")
    both = await store.list_referrers(repo.id, subject.digest, None)
    assert [r.digest for r in both] == sorted([sbom.digest, sig.digest])
    only = await store.list_referrers(repo.id, subject.digest, "application/sig")
    assert [r.digest for r in only] == [sig.digest]


async def test_typed_writes_commit_with_the_manifest(store, repo):
    record = ManifestRecord(d("m"), IMAGE, 1)
    await store.claim_blob(record.digest, 1)
    await store.put_manifest(repo.id, record, ["v1"], [],
                             writes=[NewJob("test.job", {"digest": record.digest})])
    jobs = await store.db.read(lambda c: c.all(_jobs))
    assert [(kind, payload) for kind, payload in jobs] == [
        ("test.job", '{"digest": "' + record.digest + '"}')]


async def test_typed_writes_are_not_applied_when_the_push_is_refused(store, repo):
    record = ManifestRecord(d("m"), IMAGE, 1, references=(Reference(d("x"), "blob"),))
    with pytest.raises(MissingReferencesError):
        await store.put_manifest(repo.id, record, [], [], writes=[NewJob("test.job")])
    assert await store.db.read(lambda c: c.all(_jobs)) == []


@query
def _jobs(dialect):
    return sa.select(t.jobs.c.kind, t.jobs.c.payload).order_by(t.jobs.c.id)


# -- deletes ------------------------------------------------------------------------------------

async def test_a_referenced_blob_is_not_unlinked(store, repo):
    record = await image(store, repo, "one", ["v1"], layers=("config", "layer"))
    with pytest.raises(StillReferencedError) as raised:
        await store.unlink_unreferenced_blob(repo.id, d("layer"))
    assert raised.value.referenced_by == [record.digest]
    loose = await blob(store, repo, "loose")
    assert await store.unlink_unreferenced_blob(repo.id, loose) is True
    assert await store.unlink_unreferenced_blob(repo.id, loose) is False


async def test_a_manifest_an_index_references_is_not_deleted(store, repo):
    child = await image(store, repo, "child", ["c"])
    parent = await index(store, repo, "parent", [child], ["multi"])
    with pytest.raises(StillReferencedError) as raised:
        await store.delete_unreferenced_manifest(repo.id, child.digest, [])
    assert raised.value.referenced_by == [parent.digest]
    assert await store.delete_unreferenced_manifest(repo.id, parent.digest, []) == ["multi"]
    assert await store.delete_unreferenced_manifest(repo.id, child.digest, []) == ["c"]
    assert await store.delete_unreferenced_manifest(repo.id, child.digest, []) is None
    assert await store.resolve_tag(repo.id, "c") is None


@pytest.mark.parametrize("tags, referenced, deleted", [
    (["only"], False, True),          # the last tag of an unreferenced image takes it along
    (["only", "other"], False, False),  # another tag keeps it
    (["only"], True, False),          # an index keeps it
])
async def test_delete_image_tag(store, repo, tags, referenced, deleted):
    record = await image(store, repo, "one", tags)
    if referenced:
        await index(store, repo, "parent", [record])
    gone = await store.delete_image_tag(repo.id, "only", lambda digest: [])
    assert (gone.digest, gone.manifest_deleted) == (record.digest, deleted)
    assert (await store.get_manifest(repo.id, record.digest) is None) is deleted
    assert await store.resolve_tag(repo.id, "only") is None
    assert await store.delete_image_tag(repo.id, "only", lambda digest: []) is None


async def test_delete_tag_and_manifest(store, repo):
    record = await image(store, repo, "one", ["a", "b"])
    assert await store.delete_tag(repo.id, "a", []) is True
    assert await store.delete_tag(repo.id, "a", []) is False
    assert await store.delete_manifest(repo.id, record.digest, []) is True
    assert await store.resolve_tag(repo.id, "b") is None
    assert await store.delete_manifest(repo.id, record.digest, []) is False


async def test_record_pull(store, repo):
    record = await image(store, repo, "one", ["v1"])
    await store.record_pull(repo.id, record.digest)
    found = await store.images_by_digest(repo.id, [record.digest, d("absent")])
    assert list(found) == [record.digest]
    assert found[record.digest].last_pulled_at == pytest.approx(time.time(), abs=5)
