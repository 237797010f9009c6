"""Integrity queries on every backend: fsck's snapshot is one moment, quarantine forgets a
blob under its row lock and undoes everything when the file moved on."""

from __future__ import annotations

from typing import Any

from registry.metadata.database import Conn, Database
from registry.metadata.store import SQLMetadataStore
from tests.metadata import seed

LAYER, IMAGE, OTHER = (seed.digest_of(n) for n in ("layer", "image", "other"))


def fill(c) -> tuple[int, int]:
    app, other = seed.repository(c, "app"), seed.repository(c, "other", account="111111111111")
    seed.link(c, app, LAYER, now=1.0, size=7)
    seed.link(c, other, LAYER, now=1.0, size=7)
    seed.manifest(c, app, IMAGE, now=1.0, tags=["v1"], children=[(LAYER, "blob")])
    return app, other


async def test_snapshot_holds_every_row_fsck_walks(store):
    app, other = await store.db.write(fill)
    snap = store.integrity_snapshot_sync()
    assert snap.repositories == {app: "000000000000/app", other: "111111111111/other"}
    assert snap.tags == [(app, "v1", IMAGE)]
    assert snap.manifests == {(app, IMAGE)}
    assert snap.references == {(app, IMAGE): [(LAYER, "blob")]}
    assert snap.links == {(app, LAYER), (other, LAYER)}
    assert snap.blobs == {LAYER: 7, IMAGE: 100}


class _InterruptedConn(Conn):
    """Runs ``between()`` once, after the first statement of the transaction."""

    def __init__(self, inner: Conn, between) -> None:
        self.inner, self.dialect, self.between, self.statements = inner, inner.dialect, between, 0

    def execute(self, q, params=None) -> Any:
        result = self.inner.execute(q, params)
        self.statements += 1
        if self.statements == 2:  # the snapshot's first read (after BEGIN / SET TRANSACTION)
            self.between()
        return result


class _Interrupting(Database):
    def __init__(self, inner: Database, between) -> None:
        self.inner, self.dialect, self.between = inner, inner.dialect, between

    def read_sync(self, fn):
        return self.inner.read_sync(lambda conn: fn(_InterruptedConn(conn, self.between)))

    def subscribe(self, channel, callback):
        self.inner.subscribe(channel, callback)


async def test_snapshot_does_not_see_a_push_committed_while_it_reads(store, store_factory):
    app, _ = await store.db.write(fill)
    pusher = store_factory()
    late = seed.digest_of("pushed during the snapshot")

    def push() -> None:
        pusher.db.write_sync(lambda c: seed.manifest(c, app, late, now=2.0, tags=["v2"]))

    snap = SQLMetadataStore(_Interrupting(store.db, push)).integrity_snapshot_sync()
    assert snap.tags == [(app, "v1", IMAGE)]
    assert late not in snap.blobs and (app, late) not in snap.manifests
    assert len(store.integrity_snapshot_sync().tags) == 2  # committed all the same


async def test_recorded_blobs(store):
    await store.db.write(fill)
    assert store.recorded_blobs_sync([LAYER, OTHER, IMAGE]) == {LAYER, IMAGE}
    assert store.recorded_blobs_sync([]) == set()


async def test_quarantine_forgets_the_blob_everywhere(store):
    app, other = await store.db.write(fill)
    moved = []
    forgotten = store.quarantine_blob_sync(LAYER, checked_since=10.0,
                                           move=lambda: moved.append(1) or "/q/layer")
    assert moved == [1]
    assert (forgotten.path, forgotten.repositories) == (
        "/q/layer", ["000000000000/app", "111111111111/other"])
    assert await store.db.read(lambda c: seed.links_of(c, LAYER)) == []
    assert await store.db.read(lambda c: seed.blob(c, LAYER)) is None
    # A manifest's own bytes keep their row (the manifest row needs it); only links go.
    assert store.quarantine_blob_sync(IMAGE, checked_since=10.0, move=lambda: "/q/image")
    assert await store.db.read(lambda c: seed.blob(c, IMAGE)) is not None


async def test_quarantine_changes_nothing_when_the_file_was_replaced(store):
    await store.db.write(fill)
    assert store.quarantine_blob_sync(LAYER, checked_since=10.0, move=lambda: None) is None
    assert len(await store.db.read(lambda c: seed.links_of(c, LAYER))) == 2
    assert await store.db.read(lambda c: seed.blob(c, LAYER)) == (7, 1.0)


async def test_quarantine_leaves_a_blob_claimed_since_it_was_hashed(store):
    await store.db.write(fill)
    moved = []
    # Claimed at 1.0; hashed from 0.5 on: a push may be publishing a fresh copy right now.
    assert store.quarantine_blob_sync(LAYER, checked_since=0.5,
                                      move=lambda: moved.append(1) or "/q") is None
    assert moved == [] and len(await store.db.read(lambda c: seed.links_of(c, LAYER))) == 2


async def test_quarantine_of_a_file_without_a_row_leaves_no_row(store):
    forgotten = store.quarantine_blob_sync(OTHER, checked_since=10.0, move=lambda: "/q/other")
    assert (forgotten.path, forgotten.repositories) == ("/q/other", [])
    assert await store.db.read(lambda c: seed.blob(c, OTHER)) is None
