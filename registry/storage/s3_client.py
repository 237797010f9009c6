"""The boto3 S3 client of the S3 blob store, and what its errors mean to Berth.

Credentials come from the standard AWS chain (environment, shared files, instance role),
narrowed to a named ``profile`` and/or read from ``credentials_file`` when the config names
them. Plain-HTTP S3-compatible stores (Ceph RGW 16) refuse the aws-chunked trailers newer
botocore sends by default, so checksums are computed only where an operation requires them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from registry.storage.base import StorageUnavailableError

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str = ""
    region: str = "us-east-1"
    prefix: str = ""
    profile: str = ""
    credentials_file: str = ""
    access_key: str = ""  # explicit keys (tests, bench); else the AWS chain
    secret_key: str = ""
    part_size: int = 16 * 1024 * 1024
    presign_seconds: int = 900

    def __repr__(self) -> str:  # never the secret
        return f"S3Settings(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"


def make_client(settings: S3Settings) -> Any:
    """A thread-safe boto3 S3 client for ``settings``.

    Raises:
        StorageUnavailableError: the credentials file is unusable.
    """
    session = botocore.session.Session(profile=settings.profile or None)
    if settings.credentials_file:
        _check_private(settings.credentials_file)
        session.set_config_variable("credentials_file", settings.credentials_file)
    config = botocore.config.Config(
        signature_version="s3v4", s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": 2},
        max_pool_connections=64, connect_timeout=3, read_timeout=60,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required")
    keys = {"aws_access_key_id": settings.access_key,
            "aws_secret_access_key": settings.secret_key} if settings.access_key else {}
    return boto3.Session(botocore_session=session).client(
        "s3", endpoint_url=settings.endpoint_url or None, region_name=settings.region,
        config=config, **keys)


def _check_private(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise StorageUnavailableError(f"cannot read the S3 credentials file: "
                                      f"{exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StorageUnavailableError("the S3 credentials file is readable by group or "
                                      "others: chmod 600 it")


def is_missing(exc: BaseException) -> bool:
    """A 404 of an object or a multipart upload."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code")) in _MISSING or status == 404


def unavailable(exc: BaseException) -> StorageUnavailableError:
    """What a failed S3 call tells the client: the code, never a URL or a key."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", "error")
        return StorageUnavailableError(f"S3 answered {code}")
    return StorageUnavailableError(f"S3 unreachable ({type(exc).__name__})")


S3_ERRORS = (ClientError, BotoCoreError)
