"""_catalog across more hidden repositories than one request examines (10,000): the page
comes back empty with a Link that carries a count, never a name, and following it reaches
the visible repository; an anonymous caller is asked to log in at once.

An in-process server with authorization on; the registry is filled in one transaction and
the caller's registry password is minted with the app's own signer.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa

from registry.app import create_app
from registry.appkeys import IDENTITIES, METADATA, TOKENS
from registry.auth.listing import SCAN_BUDGET
from registry.config import load_config
from registry.metadata import tables as t
from registry.metadata.database import query

ACCOUNT = "000000000000"


@query
def _insert_repository(d):
    return sa.insert(t.repositories).values(account=sa.bindparam("account"),
                                            name=sa.bindparam("name"),
                                            created_at=sa.bindparam("now"))

HIDDEN = SCAN_BUDGET + 500


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    config = load_config(environ={}, overrides={
        "data_dir": str(tmp_path / "data"), "gc.enabled": False, "scanner.enabled": False})
    app = create_app(config)

    names = [f"hidden/{i:06d}" for i in range(HIDDEN)] + ["shown/app"]
    await app[METADATA].db.write(lambda conn: conn.many(_insert_repository, [
        dict(account=ACCOUNT, name=name, now=time.time()) for name in names]))
    return await aiohttp_client(app)


def viewer_password(app) -> str:
    store = app[IDENTITIES]
    user = store.create_user(ACCOUNT, "viewer")
    key, _ = store.create_access_key(ACCOUNT, "viewer")
    store.put_user_policy(ACCOUNT, "viewer", "see-shown", json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "ecr:DescribeRepositories",
            "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/shown/*"}]}))
    password, _ = app[TOKENS].issue(principal_arn=user.arn, account=ACCOUNT, user_id=user.id,
                                    access_key_id=key.id, now=time.time())
    return password


async def test_a_budget_of_hidden_names_yields_a_count_not_a_name(client):
    password = viewer_password(client.server.app)
    auth = {"Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()}
    first = await client.get("/v2/_catalog?n=10", headers=auth)
    assert first.status == 200
    assert await first.json() == {"repositories": []}
    link = first.headers["Link"]
    query = parse_qs(urlparse(link[1:link.index(">")]).query)
    assert query == {"n": ["10"], "skip": [str(10 + SCAN_BUDGET)]}
    assert "hidden" not in link
    second = await client.get(link[1:link.index(">")], headers=auth)
    assert second.status == 200
    assert await second.json() == {"repositories": ["shown/app"]}
    assert "Link" not in second.headers


async def test_anonymous_caller_is_challenged_even_when_the_budget_runs_out(client):
    response = await client.get("/v2/_catalog?n=10")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "hidden" not in await response.text()
