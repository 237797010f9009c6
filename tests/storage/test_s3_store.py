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


async def test_a_session_lives_in_the_bucket_and_parts_start_at_the_part_size(backend):
    store = backend.new_store()
    session = await store.create_upload("acct/repo", "sha256")
    await store.append(session.id, chunks(b"x" * 1000), offset=0, length=1000)
    assert _multipart(backend) == []  # a small session never starts a multipart upload
    await store.append(session.id, chunks(os.urandom(5 * 1024 * 1024)), offset=1000,
                       length=5 * 1024 * 1024)
    assert len(_multipart(backend)) == 1
    names = {k.rsplit("/", 1)[1].split(".")[0] for k in _keys(backend, "uploads/")}
    assert names == {"session", "tail"}
    await store.cancel_upload(session.id)
    assert _keys(backend, "uploads/") == [] and _multipart(backend) == []


async def test_the_sweeper_aborts_multipart_uploads_a_crash_orphaned(backend):
    store = backend.new_store()
    data = os.urandom(6 * 1024 * 1024)
    crashed = await store.create_upload("acct/repo", "sha256")
    await store.append(crashed.id, chunks(data), offset=0, length=len(data))
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
