"""What only the filesystem store does: sessions as directories, per-process locks and
running hashes, crash debris under tmp/, hash states saved next to the data."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from registry.storage import filesystem
from registry.storage.base import SessionLimits, UploadUnknownError
from registry.storage.filesystem import FilesystemBlobStore
from tests.storage.test_blobstore_contract import chunks, digest_of


@pytest.fixture
def store(tmp_path):
    return FilesystemBlobStore(tmp_path / "data")


async def test_a_waiter_that_gets_the_lock_after_the_close_finds_no_session(store, tmp_path):
    """Another process holds the session's lock and closes it (renames it away) while an
    append of this process waits: the append must not write into the closed bytes."""
    import fcntl

    data = b"verified bytes"
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(data), offset=0, length=len(data))
    info = store.root / "uploads" / session.id / "info.json"
    other = os.open(info, os.O_RDONLY)
    fcntl.flock(other, fcntl.LOCK_EX)  # "another process" holds the session
    late = asyncio.ensure_future(store.append(session.id, chunks(b"garbage"), offset=None,
                                              length=None))
    await asyncio.sleep(0)  # the append has opened the lock file and is waiting
    assert not late.done()
    closed = tmp_path / "closed-elsewhere"
    os.rename(store.root / "uploads" / session.id, closed)
    os.close(other)
    with pytest.raises(UploadUnknownError):
        await late
    assert (closed / "data").read_bytes() == data


async def test_session_caps_forget_sessions_that_vanished(store):
    """A session removed behind the store's back (a crash while deleting) stops counting."""
    import shutil

    limits = SessionLimits(per_repository=1)
    session = await store.create_upload("acct/a", "sha256", limits=limits)
    shutil.rmtree(store.root / "uploads" / session.id)
    await store.create_upload("acct/a", "sha256", limits=limits)


async def test_sweep_leftovers_removes_only_old_debris(store):
    session = await store.create_upload("acct/a", "sha256")
    (store.root / "tmp" / "0123").write_bytes(b"staged, then the process died")
    (store.root / "uploads" / ("f" * 32)).mkdir()  # died inside create_upload
    assert store.sweep_leftovers(older_than=0.0) == []
    removed = store.sweep_leftovers(older_than=time.time() + 1)
    assert sorted(removed) == ["0123", "f" * 32]
    assert (await store.get_upload(session.id)).id == session.id


async def test_hashes_of_sessions_closed_elsewhere_are_forgotten(tmp_path):
    """Each worker only learns of its own closes; the others prune as sessions come."""
    from registry.storage import filesystem

    here, elsewhere = (FilesystemBlobStore(tmp_path / "data") for _ in range(2))
    opened = [await here.create_upload("acct/repo", "sha256")
              for _ in range(filesystem.RUNNING_PRUNE_AT)]
    for session in opened:
        await elsewhere.cancel_upload(session.id)
    kept = await here.create_upload("acct/repo", "sha256")  # goes over the mark: prunes
    assert set(here._running) == {kept.id}


async def test_a_chunk_on_another_worker_resumes_the_saved_hash_without_rereading(
        tmp_path, monkeypatch):
    data = os.urandom(3 * 1024 * 1024)
    one, two = (FilesystemBlobStore(tmp_path / "data") for _ in range(2))
    session = await one.create_upload("acct/repo", "sha256")
    await one.append(session.id, chunks(data[:1000]), offset=0, length=1000)
    rereads = []
    real = filesystem._hash_file
    monkeypatch.setattr(filesystem, "_hash_file",
                        lambda *a: rereads.append(a) or real(*a))
    await two.append(session.id, chunks(data[1000:]), offset=1000, length=len(data) - 1000)
    staged = await one.finish_upload(session.id, digest_of(data))
    assert rereads == []
    one.publish(staged)
    assert await two.read_bytes(digest_of(data)) == data


async def test_a_stale_hash_state_falls_back_to_rehashing_the_bytes(tmp_path, monkeypatch):
    """A crash between writing a chunk and saving the state leaves a state that covers
    fewer bytes than the session holds: it is not trusted."""
    data = os.urandom(100_000)
    one, two = (FilesystemBlobStore(tmp_path / "data") for _ in range(2))
    session = await one.create_upload("acct/repo", "sha256")
    await one.append(session.id, chunks(data[:500]), offset=0, length=500)
    saved = (tmp_path / "data" / "uploads" / session.id / "hashstate").read_bytes()
    await one.append(session.id, chunks(data[500:]), offset=500, length=len(data) - 500)
    (tmp_path / "data" / "uploads" / session.id / "hashstate").write_bytes(saved)
    rereads = []
    real = filesystem._hash_file
    monkeypatch.setattr(filesystem, "_hash_file",
                        lambda *a: rereads.append(a) or real(*a))
    staged = await two.finish_upload(session.id, digest_of(data))
    assert len(rereads) == 1
    two.publish(staged)
    (tmp_path / "data" / "uploads").mkdir(exist_ok=True)
    garbage = await one.create_upload("acct/repo", "sha256")
    await one.append(garbage.id, chunks(b"abc"), offset=0, length=3)
    (tmp_path / "data" / "uploads" / garbage.id / "hashstate").write_bytes(b"not a state")
    assert (await two.finish_upload(garbage.id, digest_of(b"abc"))).size == 3


async def test_an_opened_blob_keeps_its_bytes_while_it_is_deleted(store):
    """Open files keep their inode (S3 objects deleted mid-read are gone)."""
    data = os.urandom(100_000)
    store.publish(await store.stage_bytes(data, digest_of(data)))
    reader = await store.open_blob(digest_of(data))
    try:
        store.delete(digest_of(data))
        assert b"".join([c async for c in reader.chunks(0, len(data))]) == data
    finally:
        reader.close()
    assert await store.stat(digest_of(data)) is None
    assert store.blob_size(digest_of(data)) is None
