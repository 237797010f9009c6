"""The pull path's cache (PostgreSQL): a tag moved or a repository deleted through any store
on the database is seen by every other store at once, not after the cache's lifetime."""

from __future__ import annotations

import asyncio

import pytest

from registry.metadata.models import ManifestRecord
from registry.metadata.readcache import ReadCache



def _manifest(n: int) -> ManifestRecord:
    return ManifestRecord(digest=f"sha256:{n:064x}", media_type="application/json", size=2)


async def _eventually(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never seen"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_moves_and_deletes_reach_every_node(store_factory):
    here, there = store_factory(), store_factory()
    repo = await here.ensure_repository("000000000000", "cached/app")
    await here.claim_blob(_manifest(1).digest, 2)
    await here.put_manifest(repo.id, _manifest(1), ["v1"], [])
    assert (await there.resolve_tag(repo.id, "v1")).digest == _manifest(1).digest  # cached
    assert (await there.get_repository("000000000000", "cached/app")).id == repo.id

    await here.claim_blob(_manifest(2).digest, 2)
    await here.put_manifest(repo.id, _manifest(2), ["v1"], [])
    # Read-your-writes on the writing node, at once:
    assert (await here.resolve_tag(repo.id, "v1")).digest == _manifest(2).digest

    async def moved() -> bool:
        return (await there.resolve_tag(repo.id, "v1")).digest == _manifest(2).digest

    await _eventually(moved, timeout=1.0)  # well inside the cache's 2 s lifetime

    await here.delete_repository(repo, force=True, events=[])

    async def gone() -> bool:
        return await there.get_repository("000000000000", "cached/app") is None

    await _eventually(gone, timeout=1.0)


def test_answers_read_before_a_clear_are_not_kept():
    now = [0.0]
    cache = ReadCache(ttl=2.0, clock=lambda: now[0])
    generation = cache.generation()
    cache.clear()  # a change committed while the lookup ran
    cache.put("k", "old", generation)
    assert cache.get("k") is None
    cache.put("k", "new", cache.generation())
    assert cache.get("k") == "new"
    now[0] = 2.5
    assert cache.get("k") is None  # expired
    cache.put("none", None, cache.generation())
    assert cache.get("none") is None  # absent answers are never kept
