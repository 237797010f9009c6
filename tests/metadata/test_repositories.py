"""Contract: repositories, their settings and resource tags, registry settings, listing
pages; creation races between two nodes. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from registry.metadata.models import (
    Event, ManifestRecord, RepositoryExistsError, RepositoryNotEmptyError, RepositorySettings,
    TooManyTagsError,
)

ACCOUNT = "123456789012"
# Byte order: "B" < "_" < "a" < "é" (UTF-8 0xC3...), whatever the database's locale.
NAMES = ["a", "é", "_", "B", "a/b", "a-b"]
BYTE_ORDER = sorted(NAMES, key=lambda n: n.encode())


async def test_ensure_creates_once_and_then_returns_the_same_repository(store):
    assert await store.get_repository(ACCOUNT, "team/app") is None
    first = await store.ensure_repository(ACCOUNT, "team/app")
    again = await store.ensure_repository(ACCOUNT, "team/app")
    assert first == again
    assert first.settings == RepositorySettings()
    assert await store.get_repository_by_id(first.id) == first
    assert await store.get_repository("999999999999", "team/app") is None


async def test_create_with_settings_and_tags(store):
    settings = RepositorySettings(image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
                                  mutability_filters=("dev-*",), scan_on_push=True,
                                  encryption_type="KMS", kms_key="arn:key")
    repo = await store.create_repository(ACCOUNT, "team/app", settings, [("b", "2"), ("a", "1")])
    assert repo.settings == settings
    assert await store.repository_tags(repo.id) == [("a", "1"), ("b", "2")]
    with pytest.raises(RepositoryExistsError):
        await store.create_repository(ACCOUNT, "team/app", RepositorySettings())


async def test_create_refuses_more_than_50_tags_and_changes_nothing(store):
    with pytest.raises(TooManyTagsError):
        await store.create_repository(ACCOUNT, "team/app", RepositorySettings(),
                                      [(f"k{i}", "v") for i in range(51)])
    assert await store.get_repository(ACCOUNT, "team/app") is None


@pytest.mark.parametrize("existing, added, refused", [
    (50, [("k0", "new")], False),      # overwriting a key adds none
    (50, [("extra", "v")], True),
    (49, [("extra", "v")], False),
    (0, [(f"n{i}", "v") for i in range(51)], True),
])
async def test_tag_repository_counts_keys_against_the_cap(store, existing, added, refused):
    repo = await store.create_repository(ACCOUNT, "team/app", RepositorySettings(),
                                         [(f"k{i}", "v") for i in range(existing)])
    before = await store.repository_tags(repo.id)
    if refused:
        with pytest.raises(TooManyTagsError):
            await store.tag_repository(repo.id, added)
        assert await store.repository_tags(repo.id) == before
    else:
        await store.tag_repository(repo.id, added)
        assert dict(await store.repository_tags(repo.id)) == {**dict(before), **dict(added)}


async def test_untag_ignores_absent_keys(store):
    repo = await store.create_repository(ACCOUNT, "r", RepositorySettings(), [("a", "1")])
    await store.untag_repository(repo.id, ["a", "missing"])
    assert await store.repository_tags(repo.id) == []


async def test_update_repository_settings_and_policy(store):
    repo = await store.ensure_repository(ACCOUNT, "r")
    await store.update_repository(repo.id, image_tag_mutability="IMMUTABLE",
                                  mutability_filters=["x*"], scan_on_push=True,
                                  policy_text='{"Version":"2012-10-17"}')
    updated = await store.get_repository_by_id(repo.id)
    assert updated.settings.image_tag_mutability == "IMMUTABLE"
    assert updated.settings.mutability_filters == ("x*",)
    assert updated.settings.scan_on_push is True
    assert updated.policy_text == '{"Version":"2012-10-17"}'
    await store.update_repository(repo.id, policy_text=None)
    assert (await store.get_repository_by_id(repo.id)).policy_text is None
    with pytest.raises(ValueError):
        await store.update_repository(repo.id, name="renamed")


async def test_listing_pages_in_byte_order_on_every_backend(store):
    for name in NAMES:
        await store.ensure_repository(ACCOUNT, name)
    await store.ensure_repository("999999999999", "other")
    assert await store.list_repositories(ACCOUNT, last=None, limit=100) == BYTE_ORDER
    pages, last = [], None
    while True:
        page = await store.list_repositories(ACCOUNT, last=last, limit=2)
        if not page:
            break
        pages.append(page)
        last = page[-1]
    assert [n for p in pages for n in p] == BYTE_ORDER
    assert await store.list_repositories(ACCOUNT, last=None, limit=2, skip=1) == BYTE_ORDER[1:3]
    described = await store.describe_repositories(ACCOUNT, after=BYTE_ORDER[0], limit=3)
    assert [r.name for r in described] == BYTE_ORDER[1:4]


@pytest.mark.parametrize("value_before, value, existed, after", [
    (None, "x", False, "x"),
    ("x", "y", True, "y"),
    ("x", None, True, None),
    (None, None, False, None),
])
async def test_registry_settings(store, value_before, value, existed, after):
    if value_before is not None:
        await store.put_setting(ACCOUNT, "S", value_before)
    assert await store.put_setting(ACCOUNT, "S", value) is existed
    assert await store.get_setting(ACCOUNT, "S") == after
    assert await store.get_setting("999999999999", "S") is None


async def test_delete_refuses_a_repository_with_images_unless_forced(store):
    repo = await store.ensure_repository(ACCOUNT, "r")
    await store.claim_blob("sha256:m", 2)
    await store.put_manifest(repo.id, ManifestRecord("sha256:m", "application/json", 2),
                             ["v1"], [])
    with pytest.raises(RepositoryNotEmptyError):
        await store.delete_repository(repo, force=False, events=[])
    assert await store.get_repository(ACCOUNT, "r") == repo
    await store.delete_repository(repo, force=True,
                                  events=[Event("repository.deleted", {"name": "r"})])
    assert await store.get_repository(ACCOUNT, "r") is None
    assert await store.get_manifest(repo.id, "sha256:m") is None
    # The name is free again, as a new, empty repository.
    again = await store.ensure_repository(ACCOUNT, "r")
    assert await store.list_tags(again.id, last=None, limit=None) == []


async def test_concurrent_ensure_on_two_nodes_makes_one_repository(store, store_factory):
    other = store_factory()
    for round_ in range(5):
        name = f"race/{round_}"
        results = await asyncio.gather(*[s.ensure_repository(ACCOUNT, name)
                                         for s in (store, other, store, other)])
        assert len({r.id for r in results}) == 1
    assert len(await store.list_repositories(ACCOUNT, last=None, limit=100)) == 5


async def test_concurrent_create_on_two_nodes_one_wins(store, store_factory):
    other = store_factory()
    outcomes = await asyncio.gather(
        store.create_repository(ACCOUNT, "race", RepositorySettings()),
        other.create_repository(ACCOUNT, "race", RepositorySettings()),
        return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["Repository", "RepositoryExistsError"]
