"""Claim, publish, link (registry/publishing.py): the bytes are durable and in place before
the transaction that links them; a failure before publishing leaves nothing behind; a
failure after it leaves only a claimed, unlinked blob for GC."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import sqlalchemy as sa

from registry.metadata import tables as t
from registry.metadata.database import query
from registry.metadata.errors import StoreUnavailableError
from registry.metadata.store import SQLiteMetadataStore
from registry.oci.digests import parse_digest
from registry.publishing import store_blob
from registry.storage.filesystem import FilesystemBlobStore

DATA = b"layer bytes"
DIGEST = parse_digest("sha256:" + hashlib.sha256(DATA).hexdigest())


class Recording:
    """The real store, recording the order of claim and link and whether the bytes were in
    place when each ran; ``fail`` names a method that raises instead."""

    def __init__(self, real, blobs, fail: str | None = None) -> None:
        self.real, self.blobs, self.fail, self.calls = real, blobs, fail, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def claim_blob(self, digest, size):
        self.calls.append(("claim", self.blobs.local_path(DIGEST).exists()))
        if self.fail == "claim_blob":
            raise StoreUnavailableError("disk full")
        await self.real.claim_blob(digest, size)

    async def link_blob(self, repository_id, digest, size):
        self.calls.append(("link", self.blobs.local_path(DIGEST).exists()))
        if self.fail == "link_blob":
            raise StoreUnavailableError("disk full")
        await self.real.link_blob(repository_id, digest, size)


@pytest.fixture
async def stores(tmp_path):
    (tmp_path / "data").mkdir()
    metadata = SQLiteMetadataStore(tmp_path / "data" / "metadata.db")
    blobs = FilesystemBlobStore(tmp_path / "data")
    yield metadata, blobs
    await metadata.close()


def _leftovers(blobs) -> list[str]:
    tmp = blobs.root / "tmp"
    return os.listdir(tmp) if tmp.exists() else []


async def test_claimed_then_published_then_linked(stores):
    metadata, blobs = stores
    repo = await metadata.ensure_repository("1", "r")
    recording = Recording(metadata, blobs)
    await store_blob(recording, blobs, repo.id, await blobs.stage_bytes(DATA, DIGEST))
    assert recording.calls == [("claim", False), ("link", True)]
    assert await metadata.linked_blob_size(repo.id, str(DIGEST)) == len(DATA)
    assert blobs.local_path(DIGEST).read_bytes() == DATA


async def test_a_failed_claim_publishes_nothing_and_keeps_no_staged_bytes(stores):
    metadata, blobs = stores
    repo = await metadata.ensure_repository("1", "r")
    with pytest.raises(StoreUnavailableError):
        await store_blob(Recording(metadata, blobs, "claim_blob"), blobs, repo.id,
                         await blobs.stage_bytes(DATA, DIGEST))
    assert not blobs.local_path(DIGEST).exists()
    assert _leftovers(blobs) == []


async def test_a_failed_link_leaves_a_freshly_claimed_blob_for_gc(stores):
    metadata, blobs = stores
    repo = await metadata.ensure_repository("1", "r")
    before = time.time()
    with pytest.raises(StoreUnavailableError):
        await store_blob(Recording(metadata, blobs, "link_blob"), blobs, repo.id,
                         await blobs.stage_bytes(DATA, DIGEST))
    assert blobs.local_path(DIGEST).read_bytes() == DATA
    assert await metadata.linked_blob_size(repo.id, str(DIGEST)) is None
    # The claim's grace window starts now: GC leaves the row (and file) alone until it ends.
    created_at = await metadata.db.read(lambda c: c.scalar(_created_at, digest=str(DIGEST)))
    assert created_at >= before


@query
def _created_at(d):
    return sa.select(t.blobs.c.created_at).where(t.blobs.c.digest == sa.bindparam("digest"))
