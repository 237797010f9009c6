"""The BlobStore contract, run against every implementation (STYLE 2).

Only the filesystem store exists today; an S3 store joins the ``store`` fixture's params.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from registry.oci.digests import Digest
from registry.storage.base import (
    DigestMismatchError, IncompleteBodyError, OffsetMismatchError, UploadUnknownError,
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
