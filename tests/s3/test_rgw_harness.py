"""The test suite's S3 endpoint (tests/support/ceph.py) is what the S3 blob store will need.

The S3 blob store is tested against Ceph's RADOS Gateway, so the S3 operations it is built
on are pinned here with boto3 exactly as the harness configures it (SigV4, path style,
checksums only when required): object put/get/head, ranged and suffix-ranged reads,
multipart uploads with S3's 5 MiB minimum part, presigned GETs fetched by a plain HTTP
client, server-side copy, paginated listing, batch delete. Then the harness itself: one
cluster per machine (lock, busy ports), the secret key kept out of its files, radosgw
stopped and restarted alone, and `stop()` leaving nothing behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.ceph import CephBusy, CephPortsBusy, CephRGW
from tests.support.server import free_port

MIB = 1 << 20


def s3_error(excinfo) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


@pytest.fixture(scope="module")
def s3(rgw):
    return rgw.client()


# -- objects ---------------------------------------------------------------------------------

def test_put_then_get_and_head_return_the_bytes_and_their_md5_etag(s3, s3_bucket):
    data = os.urandom(100_000)
    s3.put_object(Bucket=s3_bucket, Key="a/blob", Body=data, ContentType="application/x-test")
    got = s3.get_object(Bucket=s3_bucket, Key="a/blob")
    assert got["Body"].read() == data
    head = s3.head_object(Bucket=s3_bucket, Key="a/blob")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert head["ContentType"] == "application/x-test"


def test_missing_key_is_404_for_head_and_nosuchkey_for_get(s3, s3_bucket):
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=s3_bucket, Key="missing")
    assert s3_error(head)[0] == 404
    with pytest.raises(ClientError) as get:
        s3.get_object(Bucket=s3_bucket, Key="missing")
    assert s3_error(get) == (404, "NoSuchKey")


RANGE_CASES = [
    # (Range header, first byte, last byte) on a 1000-byte object
    ("bytes=0-9", 0, 9),
    ("bytes=990-", 990, 999),
    ("bytes=-16", 984, 999),  # suffix: the last 16 bytes
    ("bytes=500-5000", 500, 999),  # a last byte past the end is clipped
]


@pytest.mark.parametrize(("header", "first", "last"), RANGE_CASES)
def test_ranged_get_answers_206_with_content_range(s3, s3_bucket, header, first, last):
    data = os.urandom(1000)
    s3.put_object(Bucket=s3_bucket, Key="ranged", Body=data)
    got = s3.get_object(Bucket=s3_bucket, Key="ranged", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {first}-{last}/1000"
    assert got["Body"].read() == data[first:last + 1]


def test_range_starting_past_the_end_is_416(s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="short", Body=b"0123456789")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=s3_bucket, Key="short", Range="bytes=10-")
    assert s3_error(excinfo) == (416, "InvalidRange")


def test_copy_object_copies_a_multipart_object_server_side(s3, s3_bucket):
    parts = [os.urandom(5 * MIB), os.urandom(100)]
    upload_parts(s3, s3_bucket, "source", parts, complete=True)
    s3.copy_object(Bucket=s3_bucket, Key="copy",
                   CopySource={"Bucket": s3_bucket, "Key": "source"})
    assert s3.get_object(Bucket=s3_bucket, Key="copy")["Body"].read() == b"".join(parts)


def test_list_objects_v2_filters_by_prefix_and_pages_with_continuation_tokens(s3, s3_bucket):
    keys = [f"blobs/{i:02d}" for i in range(7)] + ["uploads/x", "uploads/y/z"]
    for key in keys:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=key.encode())
    seen, token, pages = [], None, 0
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=s3_bucket, Prefix="blobs/", MaxKeys=3, **extra)
        seen += [item["Key"] for item in page.get("Contents", [])]
        pages += 1
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == keys[:7]
    assert pages == 3
    top = s3.list_objects_v2(Bucket=s3_bucket, Prefix="uploads/", Delimiter="/")
    assert [item["Key"] for item in top["Contents"]] == ["uploads/x"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["uploads/y/"]


def test_delete_objects_removes_every_named_key(s3, s3_bucket):
    for key in ("d/1", "d/2", "d/3", "keep"):
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    result = s3.delete_objects(Bucket=s3_bucket, Delete={
        "Objects": [{"Key": "d/1"}, {"Key": "d/2"}, {"Key": "d/3"}, {"Key": "never-there"}]})
    assert sorted(item["Key"] for item in result["Deleted"]) == \
        ["d/1", "d/2", "d/3", "never-there"]
    assert result.get("Errors", []) == []
    listed = s3.list_objects_v2(Bucket=s3_bucket)
    assert [item["Key"] for item in listed["Contents"]] == ["keep"]


# -- multipart uploads -----------------------------------------------------------------------

def upload_parts(s3, bucket: str, key: str, parts: list[bytes], *,
                 complete: bool) -> tuple[str, list[dict]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                              Body=body)["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    if complete:
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
    return upload_id, done


def test_multipart_upload_lists_its_parts_and_completes_to_their_concatenation(s3, s3_bucket):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
    upload_id, done = upload_parts(s3, s3_bucket, "big", parts, complete=False)
    listed = s3.list_parts(Bucket=s3_bucket, Key="big", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == \
        [(d["PartNumber"], len(body), d["ETag"]) for d, body in zip(done, parts)]
    s3.complete_multipart_upload(Bucket=s3_bucket, Key="big", UploadId=upload_id,
                                 MultipartUpload={"Parts": done})
    # RGW 16's CompleteMultipartUpload answers an empty ETag; HEAD has the S3 one.
    head = s3.head_object(Bucket=s3_bucket, Key="big")
    assert head["ContentLength"] == sum(map(len, parts))
    assert head["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=s3_bucket, Key="big")["Body"].read() == b"".join(parts)
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_non_final_part_under_5_mib_is_rejected_with_entity_too_small(s3, s3_bucket):
    with pytest.raises(ClientError) as excinfo:
        upload_parts(s3, s3_bucket, "small", [os.urandom(5 * MIB - 1), b"tail"],
                     complete=True)
    assert s3_error(excinfo) == (400, "EntityTooSmall")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=s3_bucket, Key="small")


def test_list_multipart_uploads_shows_open_uploads_until_aborted(s3, s3_bucket):
    first, _ = upload_parts(s3, s3_bucket, "up/one", [os.urandom(1000)], complete=False)
    second, _ = upload_parts(s3, s3_bucket, "up/two", [], complete=False)
    uploads = s3.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]
    assert sorted((u["Key"], u["UploadId"]) for u in uploads) == \
        [("up/one", first), ("up/two", second)]
    s3.abort_multipart_upload(Bucket=s3_bucket, Key="up/one", UploadId=first)
    uploads = s3.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("up/two", second)]
    with pytest.raises(ClientError) as excinfo:
        s3.list_parts(Bucket=s3_bucket, Key="up/one", UploadId=first)
    # AWS says NoSuchUpload; RGW 16 says NoSuchKey. Both are 404.
    assert s3_error(excinfo)[0] == 404


# -- presigned URLs --------------------------------------------------------------------------

def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_presigned_get_is_served_to_a_plain_http_client_and_honours_range(rgw, s3, s3_bucket):
    data = os.urandom(4096)
    s3.put_object(Bucket=s3_bucket, Key="sha256/abc", Body=data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": s3_bucket,
                                                          "Key": "sha256/abc"}, ExpiresIn=300)
    assert url.startswith(f"{rgw.endpoint_url}/{s3_bucket}/sha256/abc?")  # path style
    assert "X-Amz-Signature=" in url
    assert fetch(url)[0::2] == (200, data)
    status, headers, body = fetch(url, {"Range": "bytes=-100"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 3996-4095/4096", data[-100:])


def test_presigned_get_with_a_tampered_signature_is_refused(s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"secret bytes")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "k"},
                                    ExpiresIn=300)
    head, signature = url.rsplit("X-Amz-Signature=", 1)
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    status, _, body = fetch(f"{head}X-Amz-Signature={flipped}")
    assert status == 403
    assert b"SignatureDoesNotMatch" in body
    assert b"secret bytes" not in body


# -- the harness -----------------------------------------------------------------------------

def processes_reading(conf: Path) -> list[int]:
    """Pids whose command line names `conf` (every daemon is started with --conf)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(conf).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # gone while we looked
    return found


def test_the_secret_key_is_in_no_file_of_the_cluster_directory(rgw, s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    secret = rgw.secret_key.encode()
    holders = [path for path in Path(rgw.base_dir).rglob("*")
               if path.is_file() and not path.is_socket() and secret in path.read_bytes()]
    assert holders == []
    assert rgw.secret_key not in repr(rgw)
    assert os.stat(rgw.base_dir).st_mode & 0o777 == 0o700


def test_a_second_cluster_waits_for_the_lock_then_fails_clearly(rgw):
    with pytest.raises(CephBusy, match=f"pid {os.getpid()}.*berth-ceph.lock"):
        CephRGW(lock_timeout=0.5).start()
    assert rgw.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_busy_ports_fail_clearly_and_nothing_is_stopped(rgw, tmp_path):
    before = rgw.pids()
    with pytest.raises(CephPortsBusy, match="3300, 6789, 7480 already in use.*not start"):
        CephRGW(lock_path=tmp_path / "lock", tmp_root=tmp_path).start()
    assert rgw.pids() == before and len(before) == 3
    assert list(tmp_path.iterdir()) == [tmp_path / "lock"]  # no cluster directory left
    assert rgw.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_the_gateway_alone_stops_and_restarts_and_the_data_survives(rgw, s3_bucket):
    s3 = rgw.client()
    s3.put_object(Bucket=s3_bucket, Key="kept", Body=b"still here")
    before = rgw.pids()
    rgw.stop_gateway()
    try:
        assert set(rgw.pids()) == {"mon", "osd"}
        assert sorted(processes_reading(rgw.conf_path)) == sorted([before["mon"],
                                                                   before["osd"]])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", rgw.rgw_port), timeout=5).close()
    finally:
        rgw.start_gateway()
    after = rgw.pids()
    assert (after["mon"], after["osd"]) == (before["mon"], before["osd"])
    assert after["rgw"] != before["rgw"]
    assert s3.get_object(Bucket=s3_bucket, Key="kept")["Body"].read() == b"still here"


def test_stop_leaves_no_daemon_directory_or_lock_behind(rgw, tmp_path):
    """A second cluster beside the session's, on free ports and a lock file of its own."""
    lock = tmp_path / "lock"
    ports = (free_port(), free_port())
    cluster = CephRGW(mon_ports=ports, rgw_port=free_port(), lock_path=lock,
                      tmp_root=tmp_path, memstore_bytes=256 * MIB)
    with cluster:
        base_dir, pids = cluster.base_dir, cluster.pids()
        assert sorted(processes_reading(cluster.conf_path)) == sorted(pids.values())
        bucket = cluster.create_bucket("lifecycle")
        cluster.client().put_object(Bucket=bucket, Key="k", Body=b"v")
        assert cluster.access_key != rgw.access_key
    assert set(pids) == {"mon", "osd", "rgw"}
    assert processes_reading(base_dir / "ceph.conf") == []
    assert not base_dir.exists()
    for port in (*ports, cluster.rgw_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: this does not block
    cluster.stop()  # a second stop (the atexit one) is harmless
