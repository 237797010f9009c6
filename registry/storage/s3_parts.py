"""Multipart-upload parts sent from the event loop: a presigned UploadPart URL, the body
streamed by aiohttp as the bytes arrive.

boto3 sends a part from a thread, from memory, and (over plain HTTP) hashes it once more
for the signature. Streaming it from the loop instead means no 16 MiB buffer per part, no
thread hop per chunk, and one hash pass over the bytes (Berth's own digest): the S3 push
costs about half the CPU. The URL is signed with ``UNSIGNED-PAYLOAD``, as the AWS SDKs sign
part bodies over HTTPS; the blob's digest is checked by Berth before anything is published.

Errors mean what they mean for the boto3 calls (``s3_client``): 404 is ``FileNotFoundError``
(the multipart upload is gone), anything else ``StorageUnavailableError`` naming the S3
error code, never the URL (it carries a signature).
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from typing import Any, AsyncIterable

import aiohttp

from registry.storage.base import StorageUnavailableError

_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_ERROR_BODY_MAX = 64 * 1024


class PartSender:
    """Sends parts for one S3 store; ``session()`` opens the HTTP session a chunk uses."""

    def __init__(self, client: Any, bucket: str, *, presign_seconds: int = 900,
                 connect_timeout: float = 3.0, read_timeout: float = 60.0) -> None:
        self._client = client  # boto3: presigning only (local CPU, no request)
        self._bucket = bucket
        self._presign_seconds = presign_seconds
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._ssl: ssl.SSLContext | None = None  # made once: loading the CAs is costly

    def session(self) -> aiohttp.ClientSession:
        """A new HTTP session (close it when the chunk is done); the CA bundle is the one
        botocore would use when ``AWS_CA_BUNDLE`` names one."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))
        return aiohttp.ClientSession(
            timeout=self._timeout, auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=16, ssl=self._ssl))

    def _url(self, key: str, upload_id: str, number: int) -> str:
        return self._client.generate_presigned_url(
            "upload_part", ExpiresIn=self._presign_seconds,
            Params={"Bucket": self._bucket, "Key": key, "UploadId": upload_id,
                    "PartNumber": number})

    async def put(self, session: aiohttp.ClientSession, key: str, upload_id: str,
                  number: int, body: bytes | AsyncIterable[bytes], size: int) -> str:
        """Upload part ``number`` of ``size`` bytes; returns its ETag.

        Raises:
            FileNotFoundError: the multipart upload does not exist (aborted).
            StorageUnavailableError: S3 refused the part or could not be reached.
        """
        url = await asyncio.get_running_loop().run_in_executor(
            None, self._url, key, upload_id, number)
        try:
            async with session.put(url, data=body, headers={
                    "Content-Length": str(size), "Content-Type": "application/octet-stream"}) as response:
                if response.status == 200:
                    etag = response.headers.get("ETag")
                    await response.read()
                    if not etag:
                        raise StorageUnavailableError("S3 answered a part without an ETag")
                    return etag
                text = await response.content.read(_ERROR_BODY_MAX)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise StorageUnavailableError(f"S3 unreachable ({type(exc).__name__})") from None
        match = _CODE.search(text)
        code = match.group(1).decode() if match else str(response.status)
        if response.status == 404 or code == "NoSuchUpload":
            raise FileNotFoundError(key)
        raise StorageUnavailableError(f"S3 answered {code}")
