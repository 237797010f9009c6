"""Receiving a request body into an upload session's file, hashing it on the way.

The event loop only gathers chunk references; hashing and writing of a batch run on two
threads at once (both release the GIL) while the loop receives the next batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import AsyncIterable

from registry.storage.base import IncompleteBodyError
from registry.storage.syncio import start_writeback

# Bytes handed to the hashing and writing threads at once: small enough that a chunk's
# pipeline fills and drains quickly (a 16 MiB PATCH waits only for its last batch), large
# enough that the thread hand-offs cost little (1 MiB: chunked push +20 % over 4 MiB).
WRITE_BATCH = 1024 * 1024
IOV_BATCH = 512  # chunks per writev call (IOV_MAX is 1024 on Linux)


def _hash_batch(hasher: "hashlib._Hash", batch: list[bytes]) -> None:
    for chunk in batch:
        hasher.update(chunk)


def _write_batch(fd: int, batch: list[bytes], offset: int, last: bool = False) -> None:
    """Write the chunks in order (writev, at most IOV_BATCH at a time) and start writeback
    of everything written so far, except after a body's last batch: that one is left for
    the next body's first batch (or the closing fsync), so a chunk is answered without
    waiting for the disk queue. Only the final fsync makes anything durable."""
    total = 0
    for first in range(0, len(batch), IOV_BATCH):
        views = [memoryview(chunk) for chunk in batch[first:first + IOV_BATCH]]
        while views:
            written = os.writev(fd, views)
            total += written
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views and written:
                views[0] = views[0][written:]
    if not last:
        start_writeback(fd, 0, offset + total)


async def stream_into(path: Path, chunks: AsyncIterable[bytes], hasher: "hashlib._Hash",
                      start: int, length: int | None, executor: Executor) -> int:
    """Append a body to ``path`` (which is ``start`` bytes long) and feed ``hasher``.

    Returns the number of bytes received. On any failure nothing of the body stays: the file
    is cut back to ``start`` (``hasher`` is then invalid; the caller forgets it).

    Raises:
        IncompleteBodyError: fewer than ``length`` bytes arrived; or the body's own error.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    loop = asyncio.get_running_loop()
    stages: list[asyncio.Future] = []
    received = 0

    async def flush(batch: list[bytes], size: int, last: bool = False) -> None:
        nonlocal received
        if stages:
            await asyncio.gather(*stages)
        stages[:] = [loop.run_in_executor(executor, _hash_batch, hasher, batch),
                     loop.run_in_executor(executor, _write_batch, fd, batch, start + received,
                                          last)]
        received += size

    try:
        batch: list[bytes] = []
        size = 0
        async for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= WRITE_BATCH:
                await flush(batch, size)
                batch, size = [], 0
        if batch:
            await flush(batch, size, True)
        if stages:
            await asyncio.gather(*stages)
            stages.clear()
        if length is not None and received != length:
            raise IncompleteBodyError(f"received {received} of {length} bytes")
    except BaseException:
        if stages:
            await asyncio.wait(stages)
        os.ftruncate(fd, start)
        raise
    finally:
        os.close(fd)
    return received
