"""A response that sends one byte range of an open file, by sendfile.

``web.FileResponse`` would do its own Range, If-Range and conditional-request processing with
its own rules and its own (mtime-based) ETag, so a blob served from disk would answer
differently from the same blob served from the in-process cache. Here the handler has already
decided status, headers and slice (``registry.oci.ranges``); this only ships the bytes.
"""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter


class FileSlice(web.StreamResponse):
    """Bytes ``[offset, offset + count)`` of ``file``, with the given status and headers.

    The response owns ``file`` and closes it once sent (or once sending failed).
    """

    def __init__(self, file: BinaryIO, *, offset: int, count: int, status: int,
                 headers: dict[str, str], chunk_size: int = 1024 * 1024) -> None:
        super().__init__(status=status, headers=headers)
        self._file = file
        self._offset = offset
        self._count = count
        self._chunk_size = chunk_size
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            if self._count and request.method != "HEAD":
                await self._send(request, writer)
            await super().write_eof()
            return writer
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self._file.close)

    async def _send(self, request: web.BaseRequest, writer: AbstractStreamWriter | None) -> None:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        loop = asyncio.get_running_loop()
        try:
            # Headers are already on the wire (StreamResponse sends them at prepare).
            await loop.sendfile(transport, self._file, self._offset, self._count)
        except NotImplementedError:  # a transport without sendfile support
            await self._copy(writer)

    async def _copy(self, writer: AbstractStreamWriter | None) -> None:
        assert writer is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._file.seek, self._offset)
        left = self._count
        while left > 0:
            chunk = await loop.run_in_executor(None, self._file.read,
                                               min(self._chunk_size, left))
            if not chunk:
                raise ConnectionResetError("blob file shorter than expected")
            await writer.write(chunk)
            left -= len(chunk)
        await writer.drain()
