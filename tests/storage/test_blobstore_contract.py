"""The BlobStore contract, run against every implementation (STYLE 2): the ``backend``
fixture (tests/storage/conftest.py) names them."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from registry.oci.digests import Digest
from registry.storage.base import (
    DigestMismatchError, IncompleteBodyError, OffsetMismatchError, SessionLimits,
    TooManyUploadsError, UploadUnknownError,
)


def digest_of(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


async def chunks(*parts: bytes):
    for part in parts:
        yield part


async def failing(*parts: bytes):
    for part in parts:
        yield part
    raise ConnectionResetError("client went away")


async def test_resumed_upload_equals_monolithic(backend, store):
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
    staged_two = await backend.new_store().finish_upload(two.id, digest_of(data))
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


def _pieces(data: bytes, size: int = 256 * 1024) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


MIB = 1024 * 1024


async def test_an_announced_push_is_published_where_announced(store):
    """A monolithic push: the closing PUT's body comes with its digest (S3: parts go to
    the blob's key; 12 MiB is several parts there)."""
    data = os.urandom(12 * MIB + 5)
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(*_pieces(data)), offset=0, length=len(data),
                       digest=digest_of(data))
    staged = await store.finish_upload(session.id, digest_of(data))
    assert await store.stat(digest_of(data)) is None  # invisible until published
    store.publish(staged)
    assert await store.read_bytes(digest_of(data)) == data
    with pytest.raises(UploadUnknownError):
        await store.get_upload(session.id)


@pytest.mark.parametrize("size", [100, 12 * MIB + 5])
async def test_an_announced_push_that_fails_its_digest_changes_nothing(store, size):
    data = os.urandom(size)
    wrong = digest_of(b"something else")
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(*_pieces(data)), offset=0, length=len(data),
                       digest=wrong)
    with pytest.raises(DigestMismatchError):
        await store.finish_upload(session.id, wrong)
    assert (await store.get_upload(session.id)).offset == 0  # as the POST left it
    assert await store.stat(wrong) is None
    await store.append(session.id, chunks(*_pieces(data)), offset=0, length=len(data),
                       digest=digest_of(data))
    store.publish(await store.finish_upload(session.id, digest_of(data)))
    assert await store.read_bytes(digest_of(data)) == data
    assert await store.stat(wrong) is None


async def test_an_announced_push_discarded_leaves_nothing(store):
    data = os.urandom(12 * MIB)
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(*_pieces(data)), offset=0, length=len(data),
                       digest=digest_of(data))
    store.discard(await store.finish_upload(session.id, digest_of(data)))
    assert await store.stat(digest_of(data)) is None
    assert [u.id for u in store.list_uploads()] == []


async def test_an_announcement_counts_only_for_an_empty_session(store):
    data = os.urandom(12 * MIB)
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"head"), offset=0, length=4)
    await store.append(session.id, chunks(*_pieces(data)), offset=4, length=len(data),
                       digest=digest_of(b"wrong"))
    with pytest.raises(DigestMismatchError):
        await store.finish_upload(session.id, digest_of(b"wrong"))
    assert (await store.get_upload(session.id)).offset == 4 + len(data)  # kept, as always
    store.publish(await store.finish_upload(session.id, digest_of(b"head" + data)))
    assert await store.read_bytes(digest_of(b"head" + data)) == b"head" + data


async def test_a_large_body_that_stops_half_way_leaves_the_session_unchanged(store):
    """S3 streams a body of known length part by part as it arrives: a client that goes
    away in the middle of a part leaves nothing of its body behind."""
    data = os.urandom(12 * MIB)
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"abc"), offset=0, length=3)
    with pytest.raises((IncompleteBodyError, ConnectionResetError)):
        await store.append(session.id, failing(*_pieces(data[:7 * MIB])), offset=3,
                           length=len(data), digest=digest_of(b"abc" + data))
    with pytest.raises(IncompleteBodyError):
        await store.append(session.id, chunks(*_pieces(data[:9 * MIB])), offset=3,
                           length=len(data))
    assert (await store.get_upload(session.id)).offset == 3
    await store.append(session.id, chunks(*_pieces(data)), offset=3, length=len(data))
    store.publish(await store.finish_upload(session.id, digest_of(b"abc" + data)))
    assert await store.read_bytes(digest_of(b"abc" + data)) == b"abc" + data


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


async def test_racing_finish_and_appends_never_publish_changed_bytes(backend):
    """Three stores on one storage stand for three worker processes (or nodes)."""
    workers = [backend.new_store() for _ in range(3)]
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
        workers[1].publish(finished)
        assert await workers[0].read_bytes(digest_of(good)) == good
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

async def test_publish_replaces_a_corrupt_existing_blob(backend, store):
    data = os.urandom(10_000)
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(data), offset=0, length=len(data))
    store.publish(await store.finish_upload(session.id, digest_of(data)))
    backend.tamper(digest_of(data), b"rotten" + data[6:])
    assert not store.verify(digest_of(data)).ok
    again = await store.create_upload("acct/repo", "sha256")
    await store.append(again.id, chunks(data), offset=0, length=len(data))
    store.publish(await store.finish_upload(again.id, digest_of(data)))
    assert await store.read_bytes(digest_of(data)) == data
    manifest = b'{"schemaVersion": 2}'
    store.publish(await store.stage_bytes(manifest, digest_of(manifest)))
    backend.tamper(digest_of(manifest), b'{"schemaVersion": 3}')
    store.publish(await store.stage_bytes(manifest, digest_of(manifest)))
    assert await store.read_bytes(digest_of(manifest)) == manifest


async def test_stage_bytes_verifies_in_memory(store):
    with pytest.raises(DigestMismatchError):
        await store.stage_bytes(b"actual", digest_of(b"claimed"))
    assert list(store.iter_blobs()) == []


# -- verify and quarantine (fsck, scrub) ---------------------------------------------------

async def test_verify_and_quarantine(backend, store):
    data = os.urandom(3 * 1024 * 1024 + 5)
    staged = await store.stage_bytes(data, digest_of(data))
    store.publish(staged)
    seen = []
    check = store.verify(digest_of(data), on_bytes=seen.append)
    assert check.ok and check.size == len(data) == sum(seen)
    assert store.verify(digest_of(b"absent")) is None
    backend.tamper(digest_of(data), data[:-1] + b"!")  # in place: same object, other bytes
    bad = store.verify(digest_of(data))
    assert not bad.ok and bad.actual == digest_of(data[:-1] + b"!").hex
    moved = store.quarantine(bad, now=1_700_000_000)
    assert moved.endswith(f"/quarantine/sha256/{digest_of(data).hex}.1700000000")
    assert await store.stat(digest_of(data)) is None


async def test_quarantine_leaves_a_blob_replaced_since_the_check(backend, store):
    data = os.urandom(1000)
    store.publish(await store.stage_bytes(data, digest_of(data)))
    backend.tamper(digest_of(data), b"rot")
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




# -- reading: opened blobs, direct URLs, files for consumers -------------------------------

async def test_open_blob_streams_any_range(store):
    data = os.urandom(3 * 1024 * 1024 + 11)
    store.publish(await store.stage_bytes(data, digest_of(data)))
    reader = await store.open_blob(digest_of(data))
    try:
        assert reader.size == len(data)
        whole = b"".join([c async for c in reader.chunks(0, len(data))])
        middle = b"".join([c async for c in reader.chunks(1_000_000, 2_000_001)])
        tail = b"".join([c async for c in reader.chunks(len(data) - 1, 1)])
    finally:
        reader.close()
        reader.close()  # idempotent
    assert whole == data
    assert middle == data[1_000_000:3_000_001]
    assert tail == data[-1:]
    with pytest.raises(FileNotFoundError):
        await store.open_blob(digest_of(b"absent"))


async def test_download_url_serves_the_blob_or_is_none(store):
    import urllib.request

    data = os.urandom(50_000)
    store.publish(await store.stage_bytes(data, digest_of(data)))
    url = await store.download_url(digest_of(data), expires_seconds=60)
    if url is None:  # the store has no direct URLs (the filesystem): the server streams
        return
    with urllib.request.urlopen(url) as response:
        assert response.read() == data


async def test_materialize_places_a_file_for_a_consumer(store, tmp_path):
    data = os.urandom(200_000)
    store.publish(await store.stage_bytes(data, digest_of(data)))
    target = tmp_path / "scratch" / "blob"
    target.parent.mkdir()
    await asyncio.to_thread(store.materialize, digest_of(data), target)
    assert target.read_bytes() == data
    with pytest.raises(FileNotFoundError):
        store.materialize(digest_of(b"absent"), tmp_path / "scratch" / "none")
    assert not (tmp_path / "scratch" / "none").exists()


# -- resuming a session anywhere -------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_chunks_alternating_between_workers_hash_right(backend, algorithm):
    data = os.urandom(6 * 1024 * 1024 + 3)
    workers = [backend.new_store() for _ in range(2)]
    session = await workers[0].create_upload("acct/repo", algorithm)
    offset = 0
    for n, size in enumerate((1, 2 * 1024 * 1024, 5, 3 * 1024 * 1024, len(data))):
        part = data[offset:offset + size]
        if not part:
            break
        offset = (await workers[n % 2].append(session.id, chunks(part), offset=offset,
                                              length=len(part))).offset
    fresh = backend.new_store()  # a process that has seen none of it
    staged = await fresh.finish_upload(session.id, digest_of(data, algorithm))
    fresh.publish(staged)
    assert await workers[0].read_bytes(digest_of(data, algorithm)) == data
