"""The ECR JSON API on an in-process app with authorization off (requests are unsigned,
the caller is the default account's root): for protocol tests that need no identities."""

from __future__ import annotations

import json

TARGET = "AmazonEC2ContainerRegistry_V20150921."


async def ecr_call(client, operation: str, **params) -> tuple[int, dict]:
    response = await client.post("/", data=json.dumps(params), headers={
        "X-Amz-Target": TARGET + operation, "Content-Type": "application/x-amz-json-1.1"})
    return response.status, json.loads(await response.read() or b"{}")


async def ecr_ok(client, operation: str, **params) -> dict:
    status, body = await ecr_call(client, operation, **params)
    assert status == 200, body
    return body
