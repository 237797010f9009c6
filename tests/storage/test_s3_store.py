"""What only the S3 store does: sessions as objects in the bucket, multipart uploads the
sweeper aborts when a crash orphans them, and errors of an unreachable endpoint."""

from __future__ import annotations

import os
import time

import pytest

from registry.storage.base import StorageUnavailableError, UploadUnknownError
from registry.storage.locks import ProcessLocks
from registry.storage.s3 import S3BlobStore
from registry.storage.s3_client import S3Settings
from tests.storage.conftest import S3Backend
from tests.storage.test_blobstore_contract import chunks, digest_of


@pytest.fixture
def backend(rgw, s3_bucket, tmp_path):
    return S3Backend(rgw, s3_bucket, tmp_path)


def _keys(backend, prefix: str) -> list[str]:
    listed = backend.client.list_objects_v2(Bucket=backend.settings.bucket,
                                            Prefix="berth/" + prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def _multipart(backend) -> list[str]:
    listed = backend.client.list_multipart_uploads(Bucket=backend.settings.bucket)
    return [u["UploadId"] for u in listed.get("Uploads", [])]


def _object_names(backend) -> set[str]:
    return {k.rsplit("/", 1)[1].split(".")[0] for k in _keys(backend, "uploads/")}


def _parts(backend, session_id: str) -> list[int]:
    [upload] = backend.client.list_multipart_uploads(
        Bucket=backend.settings.bucket).get("Uploads", [])
    listed = backend.client.list_parts(Bucket=backend.settings.bucket, Key=upload["Key"],
                                       UploadId=upload["UploadId"])
    assert session_id in upload["Key"]
    return [p["Size"] for p in listed.get("Parts", [])]


async def test_a_session_lives_in_the_bucket_and_parts_start_at_the_part_size(backend):
    """Part size 5 MiB here. A body of unknown length is cut into part-size parts and the
    rest kept as the tail; a body of known length is streamed in parts whose sizes are
    fixed up front (the last takes what is left when that is under part size + 5 MiB), and
    what remains under 5 MiB is the tail."""
    mib = 1024 * 1024
    store = backend.new_store()
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"x" * 1000), offset=0, length=1000)
    assert _multipart(backend) == []  # a small session never starts a multipart upload
    assert _object_names(backend) == {"session", "tail"}
    await store.append(session.id, chunks(os.urandom(5 * mib)), offset=1000, length=None)
    assert _parts(backend, session.id) == [5 * mib]
    assert _object_names(backend) == {"session", "tail"}  # the 1000 bytes past the part
    await store.append(session.id, chunks(os.urandom(12 * mib)), offset=1000 + 5 * mib,
                       length=12 * mib)
    # 1000 + 12 MiB: one 5 MiB part, then 7 MiB + 1000 (under 10 MiB) as one more.
    assert _parts(backend, session.id) == [5 * mib, 5 * mib, 7 * mib + 1000]
    assert _object_names(backend) == {"session"}
    await store.append(session.id, chunks(os.urandom(3 * mib)), offset=17 * mib + 1000,
                       length=3 * mib)
    assert _object_names(backend) == {"session", "tail"}  # under 5 MiB: a tail
    assert (await store.get_upload(session.id)).offset == 20 * mib + 1000
    await store.cancel_upload(session.id)
    assert _keys(backend, "uploads/") == [] and _multipart(backend) == []


async def test_the_sweeper_aborts_multipart_uploads_a_crash_orphaned(backend):
    store = backend.new_store()
    data = os.urandom(6 * 1024 * 1024)
    crashed = await store.create_upload("acct/repo", "sha256")
    await store.append(crashed.id, chunks(data), offset=0, length=len(data))
    await store.append(crashed.id, chunks(b"tail"), offset=len(data), length=4)  # an object
    live = await store.create_upload("acct/repo", "sha256")
    await store.append(live.id, chunks(data), offset=0, length=len(data))
    # A crash inside create_upload or a lost record: the session's objects have no record.
    backend.client.delete_object(Bucket=backend.settings.bucket,
                                 Key=f"berth/uploads/{crashed.id}/session.json")
    assert store.sweep_leftovers(older_than=time.time() - 3600) == []  # too young
    removed = store.sweep_leftovers(older_than=time.time() + 1)
    assert crashed.id in removed
    assert any(r.startswith("multipart:") for r in removed)
    assert len(_multipart(backend)) == 1  # the live session's upload stays
    assert {k.split("/")[2] for k in _keys(backend, "uploads/")} == {live.id}
    staged = await store.finish_upload(live.id, digest_of(data))
    store.publish(staged)
    assert await store.read_bytes(digest_of(data)) == data
    assert _multipart(backend) == [] and _keys(backend, "uploads/") == []


async def test_a_session_id_that_is_not_one_is_unknown(backend):
    store = backend.new_store()
    for bad in ("../../x", "A" * 32, "0" * 31, "0" * 32 + "\n", ""):
        with pytest.raises(UploadUnknownError):
            await store.get_upload(bad)
        with pytest.raises(UploadUnknownError):
            await store.append(bad, chunks(b"x"), offset=None, length=None)


async def test_an_unreachable_endpoint_is_storage_unavailable_without_secrets(backend):
    settings = S3Settings(bucket=backend.settings.bucket, endpoint_url="http://127.0.0.1:9",
                          access_key="AKIDEXAMPLE", secret_key="do-not-print-me")
    store = S3BlobStore(settings, locks=ProcessLocks())
    with pytest.raises(StorageUnavailableError) as info:
        await store.create_upload("acct/repo", "sha256")
    assert "do-not-print-me" not in str(info.value) and "AKIDEXAMPLE" not in str(info.value)
    assert "do-not-print-me" not in repr(settings)


async def test_an_announced_push_uploads_at_the_blob_key_and_the_sweeper_knows_it(backend):
    """A monolithic push's multipart upload is made at the blob's key; nothing is visible
    there until publish; an orphaned one there (a crash) is aborted by the sweeper."""
    store = backend.new_store()
    data = os.urandom(11 * 1024 * 1024)
    digest = digest_of(data)
    blob_key = f"berth/blobs/sha256/{digest.hex}"
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(data), offset=0, length=len(data), digest=digest)
    [upload] = backend.client.list_multipart_uploads(
        Bucket=backend.settings.bucket)["Uploads"]
    assert upload["Key"] == blob_key
    assert _keys(backend, "blobs/") == []
    assert store.sweep_leftovers(older_than=time.time() + 1) == []  # a live session's
    staged = await store.finish_upload(session.id, digest)
    store.publish(staged)
    assert _keys(backend, "blobs/") == [blob_key] and _multipart(backend) == []
    assert _keys(backend, "uploads/") == []

    crashed = await store.create_upload("acct/repo", "sha256")
    other = os.urandom(6 * 1024 * 1024)
    await store.append(crashed.id, chunks(other), offset=0, length=len(other),
                       digest=digest_of(other))
    backend.client.delete_object(Bucket=backend.settings.bucket,
                                 Key=f"berth/uploads/{crashed.id}/session.json")
    removed = store.sweep_leftovers(older_than=time.time() + 1)
    assert f"multipart:berth/blobs/sha256/{digest_of(other).hex}" in removed
    assert _multipart(backend) == []


async def test_a_part_of_an_aborted_upload_is_a_missing_object(backend):
    """The sweeper aborted the upload under a slow chunk: the part's 404 is the upload
    gone, as for boto3's calls; other refusals name S3's code and never the signed URL."""
    from registry.storage.s3_parts import PartSender

    client = backend.client
    key = "berth/uploads/x/data"
    upload_id = client.create_multipart_upload(Bucket=backend.settings.bucket,
                                               Key=key)["UploadId"]
    client.abort_multipart_upload(Bucket=backend.settings.bucket, Key=key, UploadId=upload_id)
    sender = PartSender(client, backend.settings.bucket)
    async with sender.session() as http:
        with pytest.raises(FileNotFoundError):
            await sender.put(http, key, upload_id, 1, b"x" * 100, 100)
    unreachable = S3BlobStore(S3Settings(bucket="b", endpoint_url="http://127.0.0.1:9",
                                         access_key="AKIDEXAMPLE", secret_key="secret-x"))
    async with unreachable._parts.session() as http:
        with pytest.raises(StorageUnavailableError) as info:
            await unreachable._parts.put(http, key, "id", 1, b"x", 1)
    assert "Signature" not in str(info.value) and "AKIDEXAMPLE" not in str(info.value)
