"""Credentials for benchmarking Berth with authorization on.

``registry_auth_header`` is a ``TargetSpec.prepare`` hook: once the target is ready it reads
the administrator's keys that Berth's first start wrote to ``<data>/credentials``, asks the
target's ECR API for an authorization token (``GetAuthorizationToken``, SigV4-signed by boto3,
as ``aws ecr get-login-password`` does) and returns the ``Authorization: Basic`` header that
``docker login`` would send. The token is never printed or written to the report.
"""

from __future__ import annotations

import configparser
import os
import time

_CREDENTIALS_WAIT = 30.0


def _admin_keys(data_dir: str) -> tuple[str, str]:
    path = os.path.join(data_dir, "credentials")
    deadline = time.monotonic() + _CREDENTIALS_WAIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no credentials file at {path}")
        time.sleep(0.1)
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser[parser.sections()[0]]
    return section["aws_access_key_id"], section["aws_secret_access_key"]


def registry_auth_header(target) -> dict[str, str]:
    """Return ``{"Authorization": "Basic ..."}`` for ``target`` (a RunningTarget)."""
    import boto3  # Berth's own dependency; imported here so other targets never need it

    key_id, secret = _admin_keys(target.data_dir)
    client = boto3.client("ecr", endpoint_url=target.url, region_name="us-east-1",
                          aws_access_key_id=key_id, aws_secret_access_key=secret)
    data = client.get_authorization_token()["authorizationData"][0]
    return {"Authorization": f"Basic {data['authorizationToken']}"}
