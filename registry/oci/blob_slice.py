"""A response that sends one byte range of an opened blob: by sendfile when the store
hands over a local file, else streamed from the store.

``web.FileResponse`` would do its own Range, If-Range and conditional-request processing with
its own rules and its own (mtime-based) ETag, so a blob served from disk would answer
differently from the same blob served from the in-process cache. Here the handler has already
decided status, headers and slice (``registry.oci.ranges``); this only ships the bytes.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from registry.storage.base import BlobReader


class BlobSlice(web.StreamResponse):
    """Bytes ``[offset, offset + count)`` of ``reader``, with the given status and headers.

    The response owns ``reader`` and closes it once sent (or once sending failed).
    """

    def __init__(self, reader: BlobReader, *, offset: int, count: int, status: int,
                 headers: dict[str, str]) -> None:
        super().__init__(status=status, headers=headers)
        self._reader = reader
        self._offset = offset
        self._count = count
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
            await asyncio.get_running_loop().run_in_executor(None, self._reader.close)

    async def _send(self, request: web.BaseRequest, writer: AbstractStreamWriter | None) -> None:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        if self._reader.file is not None:
            try:
                # Headers are already on the wire (StreamResponse sends them at prepare).
                await asyncio.get_running_loop().sendfile(
                    transport, self._reader.file, self._offset, self._count)
                return
            except NotImplementedError:  # a transport without sendfile support
                pass
        await self._copy(writer)

    async def _copy(self, writer: AbstractStreamWriter | None) -> None:
        assert writer is not None
        async for chunk in self._reader.chunks(self._offset, self._count):
            await writer.write(chunk)
        await writer.drain()
