"""Listings and denials never name a repository the caller may not see (issue 8, §3).

One caller is allowed to describe only ``<u>/*-visible``; the registry also holds
``<u>/*-secret`` repositories, sorted before, between and after the visible ones (and every
other test's repositories, all hidden from it). Nothing of the secret ones may appear in a
page, a ``Link`` header, a ``nextToken`` (decoded) or an error message.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from botocore.exceptions import ClientError

from tests.authz.conftest import V2, allow, policy, registry_password

VISIBLE = ("b-visible", "d-visible")
SECRET = ("a-secret", "c-secret", "e-secret")


@pytest.fixture(scope="module")
def layout(auth_server):
    unique = __import__("uuid").uuid4().hex[:8]
    admin = auth_server.client()
    for suffix in VISIBLE + SECRET:
        admin.create_repository(repositoryName=f"{unique}/{suffix}")
    arn = f"arn:aws:ecr:us-east-1:000000000000:repository/{unique}/*-visible"
    viewer = auth_server.make_user(policy=policy(allow(["ecr:DescribeRepositories"], arn)))
    nobody = auth_server.make_user(policy=policy(allow(
        ["ecr:DescribeRepositories"],
        f"arn:aws:ecr:us-east-1:000000000000:repository/{unique}/none-*")))
    return unique, viewer, nobody


def assert_no_secret(unique: str, *texts: str) -> None:
    for text in texts:
        for suffix in SECRET:
            assert suffix not in text, text
        assert f"{unique}/" not in text.replace(f"{unique}/b-visible", "").replace(
            f"{unique}/d-visible", ""), text


def catalog_pages(v2: V2, path: str) -> list[requests.Response]:
    pages = []
    while path:
        response = v2.get(path)
        assert response.status_code == 200, response.text
        pages.append(response)
        link = response.headers.get("Link")
        path = link[1:link.index(">")] if link else ""
        assert len(pages) < 10
    return pages


def test_catalog_shows_only_visible_names_and_its_links_name_only_them(auth_server, layout):
    unique, viewer, _ = layout
    v2 = V2(auth_server, registry_password(auth_server, viewer))
    whole = v2.get("/v2/_catalog")
    assert whole.status_code == 200
    assert whole.json() == {"repositories": [f"{unique}/{s}" for s in VISIBLE]}
    assert "Link" not in whole.headers
    pages = catalog_pages(v2, "/v2/_catalog?n=1")
    assert [p.json()["repositories"] for p in pages] == [[f"{unique}/b-visible"],
                                                         [f"{unique}/d-visible"]]
    link = pages[0].headers["Link"]
    assert parse_qs(urlparse(link[1:link.index(">")]).query) == {
        "n": ["1"], "last": [f"{unique}/b-visible"]}
    # Starting after a hidden name the caller names itself is allowed and names nothing new.
    after_secret = v2.get(f"/v2/_catalog?n=1&last={unique}/c-secret")
    assert after_secret.json() == {"repositories": [f"{unique}/d-visible"]}
    for response in [whole, *pages, after_secret]:
        assert_no_secret(unique, response.text, response.headers.get("Link", ""))


def test_catalog_denial_names_the_listing_not_a_repository(auth_server, layout):
    unique, _, nobody = layout
    refused = V2(auth_server, registry_password(auth_server, nobody)).get("/v2/_catalog")
    assert refused.status_code == 403
    error = refused.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert "ecr:DescribeRepositories on resource: " \
           "arn:aws:ecr:us-east-1:000000000000:repository/* because" in error["message"]
    assert_no_secret(unique, refused.text)
    anonymous = requests.get(auth_server.url + "/v2/_catalog", timeout=10)
    assert anonymous.status_code == 401
    assert_no_secret(unique, anonymous.text)


def test_catalog_rejects_a_malformed_skip(auth_server, layout):
    _, viewer, _ = layout
    v2 = V2(auth_server, registry_password(auth_server, viewer))
    for bad in ("-1", "x", "99999999999"):
        response = v2.get(f"/v2/_catalog?skip={bad}")
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def decoded(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def test_describe_repositories_filters_silently_and_its_token_names_only_visible(auth_server,
                                                                                 layout):
    unique, viewer, _ = layout
    ecr = auth_server.client(viewer)
    everything = ecr.describe_repositories()
    assert [r["repositoryName"] for r in everything["repositories"]] == \
        [f"{unique}/{s}" for s in VISIBLE]
    assert "nextToken" not in everything
    first = ecr.describe_repositories(maxResults=1)
    assert [r["repositoryName"] for r in first["repositories"]] == [f"{unique}/b-visible"]
    assert json.loads(decoded(first["nextToken"])) == f"{unique}/b-visible"
    second = ecr.describe_repositories(maxResults=1, nextToken=first["nextToken"])
    assert [r["repositoryName"] for r in second["repositories"]] == [f"{unique}/d-visible"]
    assert "nextToken" not in second
    paged = [r["repositoryName"] for page in ecr.get_paginator("describe_repositories")
             .paginate(PaginationConfig={"PageSize": 1}) for r in page["repositories"]]
    assert paged == [f"{unique}/{s}" for s in VISIBLE]
    assert_no_secret(unique, json.dumps(everything, default=str), decoded(first["nextToken"]))


def test_describe_repositories_denial_names_the_listing_not_a_repository(auth_server, layout):
    unique, _, nobody = layout
    with pytest.raises(ClientError) as raised:
        auth_server.client(nobody).describe_repositories()
    error = raised.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "ecr:DescribeRepositories on resource: " \
           "arn:aws:ecr:us-east-1:000000000000:repository/* because" in error["Message"]
    assert_no_secret(unique, error["Message"])


def test_named_repositories_are_authorized_before_they_are_looked_up(auth_server, layout):
    """A hidden repository and a missing one answer alike: existence does not leak."""
    unique, viewer, _ = layout
    ecr = auth_server.client(viewer)
    answers = {}
    for name in (f"{unique}/c-secret", f"{unique}/z-missing-secret"):
        with pytest.raises(ClientError) as raised:
            ecr.describe_repositories(repositoryNames=[name])
        error = raised.value.response["Error"]
        answers[name] = error["Code"]
        assert error["Message"].endswith(f"repository/{name} because no identity-based "
                                         "policy allows the ecr:DescribeRepositories action")
    assert set(answers.values()) == {"AccessDeniedException"}
    with pytest.raises(ClientError) as raised:
        ecr.describe_repositories(repositoryNames=[f"{unique}/f-visible"])
    assert raised.value.response["Error"]["Code"] == "RepositoryNotFoundException"
