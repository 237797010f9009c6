"""The BlobStore contract, run against every implementation (STYLE 2).

Only the filesystem store exists today; an S3 store joins the ``store`` fixture's params.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from registry.oci.digests import Digest
from registry.storage.base import (
    DigestMismatchError, IncompleteBodyError, OffsetMismatchError, SessionLimits,
    TooManyUploadsError, UploadUnknownError,
)
from registry.storage.filesystem import FilesystemBlobStore


@pytest.fixture(params=["filesystem"])
def store(request, tmp_path):
    return FilesystemBlobStore(tmp_path / "data")


def digest_of(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


async def chunks(*parts: bytes):
    for part in parts:
        yield part


async def failing(*parts: bytes):
    for part in parts:
        yield part
    raise ConnectionResetError("client went away")


async def test_resumed_upload_equals_monolithic(store):
    data = os.urandom(9 * 1024 * 1024 + 7)  # crosses the write batch size
    one = await store.create_upload("acct/repo", "sha256")
    await store.append(one.id, chunks(data), offset=0, length=len(data))
    staged_one = await store.finish_upload(one.id, digest_of(data))
    two = await store.create_upload("acct/repo", "sha256")
    offset = 0
    for size in (1, 4 * 1024 * 1024, 3, len(data)):
        part = data[offset:offset + size]
        if not part:
            break
        session = await store.append(two.id, chunks(part), offset=offset, length=len(part))
        offset = session.offset
    store._running.clear()  # as after a restart: the hash is rebuilt from disk
    staged_two = await store.finish_upload(two.id, digest_of(data))
    assert staged_one.size == staged_two.size == len(data)
    store.publish(staged_one)
    store.publish(staged_two)
    assert await store.read_bytes(digest_of(data)) == data


async def test_blob_invisible_until_published(store):
    data = b"payload"
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(data), offset=0, length=None)
    staged = await store.finish_upload(session.id, digest_of(data))
    assert await store.stat(digest_of(data)) is None
    store.publish(staged)
    assert await store.stat(digest_of(data)) == len(data)
    with pytest.raises(UploadUnknownError):
        await store.get_upload(session.id)


async def test_offset_mismatch(store):
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"abc"), offset=0, length=3)
    with pytest.raises(OffsetMismatchError) as info:
        await store.append(session.id, chunks(b"xyz"), offset=5, length=3)
    assert info.value.offset == 3


@pytest.mark.parametrize("body,length", [(failing(b"abc"), 10), (chunks(b"abc"), 10)])
async def test_failed_body_leaves_session_unchanged(store, body, length):
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"12345"), offset=0, length=5)
    with pytest.raises((IncompleteBodyError, ConnectionResetError)):
        await store.append(session.id, body, offset=5, length=length)
    assert (await store.get_upload(session.id)).offset == 5
    await store.append(session.id, chunks(b"678"), offset=5, length=3)
    staged = await store.finish_upload(session.id, digest_of(b"12345678"))
    assert staged.size == 8


async def test_digest_mismatch_keeps_session(store):
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"abc"), offset=0, length=3)
    with pytest.raises(DigestMismatchError):
        await store.finish_upload(session.id, digest_of(b"other"))
    assert (await store.get_upload(session.id)).offset == 3


async def test_other_algorithm_at_finish(store):
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"abc"), offset=0, length=3)
    staged = await store.finish_upload(session.id, digest_of(b"abc", "sha512"))
    store.publish(staged)
    assert await store.read_bytes(digest_of(b"abc", "sha512")) == b"abc"


async def test_cancel_and_unknown(store):
    session = await store.create_upload("acct/repo", "sha256")
    await store.cancel_upload(session.id)
    for call in (store.get_upload(session.id), store.cancel_upload(session.id),
                 store.get_upload("not-a-session"), store.get_upload("../../etc")):
        with pytest.raises(UploadUnknownError):
            await call


async def test_stage_publish_delete_iterate(store):
    data = b'{"manifest": true}'
    staged = await store.stage_bytes(data, digest_of(data))
    store.publish(staged)
    again = await store.stage_bytes(data, digest_of(data))
    store.publish(again)  # idempotent
    assert [b.digest for b in store.iter_blobs()] == [digest_of(data)]
    store.delete(digest_of(data))
    store.delete(digest_of(data))  # missing is not an error
    assert list(store.iter_blobs()) == []


async def test_list_and_discard_uploads(store):
    a = await store.create_upload("acct/a", "sha256")
    b = await store.create_upload("acct/b", "sha512")
    assert {s.id for s in store.list_uploads()} == {a.id, b.id}
    store.discard_upload(a.id)
    store.discard_upload(a.id)
    assert [s.id for s in store.list_uploads()] == [b.id]


# -- closing a session is atomic (issue 8: a PATCH racing the closing PUT) --------------------

async def test_a_closed_session_refuses_every_request(store):
    data = b"good bytes"
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(data), offset=0, length=len(data))
    staged = await store.finish_upload(session.id, digest_of(data))
    for call in (store.append(session.id, chunks(b"garbage"), offset=None, length=None),
                 store.append(session.id, chunks(b"garbage"), offset=len(data), length=7),
                 store.finish_upload(session.id, digest_of(data)),
                 store.cancel_upload(session.id),
                 store.get_upload(session.id)):
        with pytest.raises(UploadUnknownError):
            await call
    store.publish(staged)
    assert await store.read_bytes(digest_of(data)) == data


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


async def test_racing_finish_and_appends_never_publish_changed_bytes(tmp_path):
    """Three stores on one root stand for three worker processes."""
    root = tmp_path / "data"
    workers = [FilesystemBlobStore(root) for _ in range(3)]
    outcomes = set()
    for _ in range(20):
        good = os.urandom(4096)
        session = await workers[0].create_upload("acct/repo", "sha256")
        await workers[0].append(session.id, chunks(good), offset=0, length=len(good))
        results = await asyncio.gather(
            workers[1].finish_upload(session.id, digest_of(good)),
            workers[2].append(session.id, chunks(b"garbage" * 100), offset=None, length=None),
            return_exceptions=True)
        finished, appended = results
        if isinstance(finished, DigestMismatchError):
            assert not isinstance(appended, BaseException)  # the append won the lock
            outcomes.add("append first")
            await workers[0].cancel_upload(session.id)
            continue
        assert isinstance(appended, UploadUnknownError), appended
        outcomes.add("finish first")
        assert hashlib.sha256(finished.source.read_bytes()).hexdigest() == digest_of(good).hex
        workers[1].publish(finished)
    assert outcomes  # at least one race ran to an end
    for blob in workers[0].iter_blobs():
        check = workers[0].verify(blob.digest)
        assert check is not None and check.ok


async def test_discard_leaves_a_held_session_alone(store):
    session = await store.create_upload("acct/repo", "sha256")
    gate = asyncio.Event()

    async def slow_body():
        yield b"abc"
        await gate.wait()

    appending = asyncio.ensure_future(store.append(session.id, slow_body(), offset=0,
                                                   length=None))
    await asyncio.sleep(0)
    assert store.discard_upload(session.id) is False
    gate.set()
    assert (await appending).offset == 3
    assert store.discard_upload(session.id) is True
    with pytest.raises(UploadUnknownError):
        await store.get_upload(session.id)


# -- publish never trusts what is already there ---------------------------------------------

async def test_publish_replaces_a_corrupt_existing_blob(store):
    data = os.urandom(10_000)
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(data), offset=0, length=len(data))
    store.publish(await store.finish_upload(session.id, digest_of(data)))
    store.local_path(digest_of(data)).write_bytes(b"rotten" + data[6:])
    assert not store.verify(digest_of(data)).ok
    again = await store.create_upload("acct/repo", "sha256")
    await store.append(again.id, chunks(data), offset=0, length=len(data))
    store.publish(await store.finish_upload(again.id, digest_of(data)))
    assert await store.read_bytes(digest_of(data)) == data
    manifest = b'{"schemaVersion": 2}'
    store.publish(await store.stage_bytes(manifest, digest_of(manifest)))
    store.local_path(digest_of(manifest)).write_bytes(b'{"schemaVersion": 3}')
    store.publish(await store.stage_bytes(manifest, digest_of(manifest)))
    assert await store.read_bytes(digest_of(manifest)) == manifest


async def test_stage_bytes_verifies_in_memory(store):
    with pytest.raises(DigestMismatchError):
        await store.stage_bytes(b"actual", digest_of(b"claimed"))
    assert list(store.iter_blobs()) == []


# -- verify and quarantine (fsck, scrub) ---------------------------------------------------

async def test_verify_and_quarantine(store):
    data = os.urandom(3 * 1024 * 1024 + 5)
    staged = await store.stage_bytes(data, digest_of(data))
    store.publish(staged)
    seen = []
    check = store.verify(digest_of(data), on_bytes=seen.append)
    assert check.ok and check.size == len(data) == sum(seen)
    assert store.verify(digest_of(b"absent")) is None
    path = store.local_path(digest_of(data))
    path.write_bytes(data[:-1] + b"!")  # rewritten in place: same file, other bytes
    bad = store.verify(digest_of(data))
    assert not bad.ok and bad.actual == digest_of(data[:-1] + b"!").hex
    moved = store.quarantine(bad, now=1_700_000_000)
    assert moved.endswith(f"/quarantine/sha256/{digest_of(data).hex}.1700000000")
    assert await store.stat(digest_of(data)) is None


async def test_quarantine_leaves_a_blob_replaced_since_the_check(store):
    data = os.urandom(1000)
    store.publish(await store.stage_bytes(data, digest_of(data)))
    store.local_path(digest_of(data)).write_bytes(b"rot")
    bad = store.verify(digest_of(data))
    store.publish(await store.stage_bytes(data, digest_of(data)))  # a re-push heals it
    assert store.quarantine(bad, now=1.0) is None
    assert await store.read_bytes(digest_of(data)) == data


# -- caps on open sessions -----------------------------------------------------------------

async def test_session_caps_per_repository_and_owner(store):
    limits = SessionLimits(per_repository=2, per_owner=3)
    a = await store.create_upload("acct/a", "sha256", owner="arn:alice", limits=limits)
    await store.create_upload("acct/a", "sha256", owner="arn:alice", limits=limits)
    with pytest.raises(TooManyUploadsError) as info:
        await store.create_upload("acct/a", "sha256", owner="arn:bob", limits=limits)
    assert (info.value.scope, info.value.limit) == ("repository", 2)
    c = await store.create_upload("acct/b", "sha256", owner="arn:alice", limits=limits)
    with pytest.raises(TooManyUploadsError) as info:
        await store.create_upload("acct/c", "sha256", owner="arn:alice", limits=limits)
    assert (info.value.scope, info.value.limit) == ("principal", 3)
    assert (await store.get_upload(a.id)).owner == "arn:alice"
    await store.cancel_upload(a.id)  # frees a slot of both
    await store.create_upload("acct/a", "sha256", owner="arn:alice", limits=limits)
    await store.append(c.id, chunks(b"x"), offset=0, length=1)
    store.publish(await store.finish_upload(c.id, digest_of(b"x")))  # finishing frees one
    await store.create_upload("acct/c", "sha256", owner="arn:alice", limits=limits)
    unlimited = SessionLimits()
    for _ in range(3):
        await store.create_upload("acct/a", "sha256", owner="arn:alice", limits=unlimited)


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
