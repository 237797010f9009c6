"""The ``s3-ceiling`` target: the same blob file to and from the same Ceph RGW without Berth,
the reference for "a push through Berth is at least 0.8x of boto3 ``upload_file``".

- push (``push-mono`` and ``push-chunked`` alike): ``upload_file`` of the blob file to a
  fresh key, with boto3's defaults (``TransferConfig()``: multipart above 8 MiB, 8 MiB
  parts, 10 threads). The client is the RGW harness's (``CephRGW.client``): SigV4,
  path-style addressing and checksums only where required — the last is what Berth's own
  client does too, because RGW 16 refuses the aws-chunked trailers newer botocore sends.
  Timed from the call to its return (the upload is complete).
- pull: the object is uploaded (untimed), then a presigned URL of it is fetched with the
  benchmark's own HTTP client, the same way a pull from ``berth-s3`` ends after its 307:
  the ceiling of that pull without Berth's redirect in front. boto3's ``download_fileobj``
  into a sink that discards (defaults: ranged GETs on 10 threads) is timed as well and kept
  in the sample as ``boto3_download``; it is not the sample's value.
"""

from __future__ import annotations

import statistics
import time
import uuid
from urllib.parse import urlsplit

from bench.httpclient import Connection, FileRange, HttpError
from bench.payload import BlobFile

MB = 1_000_000
_PRESIGN_SECONDS = 900


class _Discard:
    """A writable file object that drops what it is given (download_fileobj's sink)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def _client(target):
    if target.s3 is None or not target.bucket:
        raise RuntimeError(f"{target.name} has no bucket (is the RGW cluster running?)")
    return target.s3.client()


def upload(target, blob: BlobFile) -> tuple[str, float]:
    """``upload_file`` of the blob to a fresh key with boto3's defaults; (key, seconds)."""
    from boto3.s3.transfer import TransferConfig

    client = _client(target)
    key = f"ceiling/{uuid.uuid4().hex}"
    start = time.perf_counter()
    client.upload_file(blob.path, target.bucket, key, Config=TransferConfig())
    return key, time.perf_counter() - start


def measure_push(target, blob: BlobFile) -> dict:
    _, seconds = upload(target, blob)
    return {"value": blob.size / MB / seconds, "seconds": seconds}


def measure_serial_parts(target, blob: BlobFile, chunk_size: int) -> dict:
    """The ``s3-serial`` target: the blob as a multipart upload of ``chunk_size`` parts sent
    one after the other, each waiting for RGW's answer before the next starts (sendfile from
    the blob file to a presigned UploadPart URL, as Berth sends parts). That is the least
    a chunked push through any server that keeps no state of its own costs: each PATCH's
    202 may only go out once S3 has stored its bytes."""
    client = _client(target)
    key = f"serial/{uuid.uuid4().hex}"
    start = time.perf_counter()
    upload_id = client.create_multipart_upload(Bucket=target.bucket, Key=key)["UploadId"]
    parts = []
    endpoint = urlsplit(target.s3.endpoint_url)
    with open(blob.path, "rb") as source, \
            Connection(endpoint.hostname, endpoint.port or 80) as conn:
        for number, offset in enumerate(range(0, blob.size, chunk_size), start=1):
            count = min(chunk_size, blob.size - offset)
            url = client.generate_presigned_url(
                "upload_part", ExpiresIn=_PRESIGN_SECONDS,
                Params={"Bucket": target.bucket, "Key": key, "UploadId": upload_id,
                        "PartNumber": number})
            response = conn.request("PUT", url, body=FileRange(source.fileno(), offset, count),
                                    headers={"Content-Type": "application/octet-stream"})
            response.expect(200)
            parts.append({"PartNumber": number, "ETag": response.header("etag")})
    client.complete_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    seconds = time.perf_counter() - start
    return {"value": blob.size / MB / seconds, "seconds": seconds}


def measure_pull(target, blob: BlobFile, pulls: int) -> dict:
    from boto3.s3.transfer import TransferConfig

    key, _ = upload(target, blob)
    client = _client(target)
    url = client.generate_presigned_url("get_object",
                                        Params={"Bucket": target.bucket, "Key": key},
                                        ExpiresIn=_PRESIGN_SECONDS)
    parts = urlsplit(url)
    streamed, boto3_rates = [], []
    for _ in range(pulls):
        with Connection(parts.hostname, parts.port or 80) as conn:
            start = time.perf_counter()
            response = conn.request("GET", url, discard_body=True).expect(200)
            streamed.append(blob.size / MB / (time.perf_counter() - start))
        if response.body_length != blob.size:
            raise HttpError(f"pulled {response.body_length} bytes, expected {blob.size}")
    for _ in range(pulls):
        sink = _Discard()
        start = time.perf_counter()
        client.download_fileobj(target.bucket, key, sink, Config=TransferConfig())
        boto3_rates.append(blob.size / MB / (time.perf_counter() - start))
        if sink.size != blob.size:
            raise HttpError(f"boto3 downloaded {sink.size} bytes, expected {blob.size}")
    return {"value": statistics.median(streamed), "pulls": streamed,
            "boto3_download": boto3_rates}
