"""The stale-session sweeper and the session lock: a session a request holds is never swept
from under it; debris of interrupted uploads goes once it is old."""

from __future__ import annotations

import asyncio
import time

from registry.gc import LEFTOVER_MIN_AGE, sweep_uploads
from registry.storage.filesystem import FilesystemBlobStore


async def test_sweeper_skips_a_held_session_and_takes_it_on_a_later_pass(tmp_path):
    store = FilesystemBlobStore(tmp_path / "data")
    held = await store.create_upload("acct/repo", "sha256")
    idle = await store.create_upload("acct/repo", "sha256")
    gate = asyncio.Event()

    async def slow_body():
        yield b"abc"
        await gate.wait()

    appending = asyncio.ensure_future(store.append(held.id, slow_body(), offset=0, length=None))
    await asyncio.sleep(0)
    later = time.time() + 2 * 86400
    assert sweep_uploads(store, max_age_seconds=86400, now=later) == [idle.id]
    gate.set()
    await appending
    assert sweep_uploads(store, max_age_seconds=86400, now=later) == [held.id]
    assert list(store.list_uploads()) == []


async def test_debris_is_kept_for_at_least_an_hour(tmp_path):
    store = FilesystemBlobStore(tmp_path / "data")
    debris = store.root / "tmp" / ("closing-" + "0" * 32 + "-00000000")
    debris.mkdir()
    (debris / "data").write_bytes(b"a session closed by a process that then died")
    sweep_uploads(store, max_age_seconds=0, now=time.time() + LEFTOVER_MIN_AGE / 2)
    assert debris.exists()
    sweep_uploads(store, max_age_seconds=0, now=time.time() + LEFTOVER_MIN_AGE + 1)
    assert not debris.exists()
