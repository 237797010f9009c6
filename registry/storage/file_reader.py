"""Local-file pieces of the filesystem store: an opened blob, and placing a blob's file
where a consumer needs one."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
from concurrent.futures import Executor
from pathlib import Path
from typing import AsyncIterator, BinaryIO

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
_LINK_FALLBACK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP}


class FileBlobReader:
    """``BlobReader`` over an open file: sendfile-able, or read in chunks on threads."""

    def __init__(self, file: BinaryIO, executor: Executor | None = None) -> None:
        self.file: BinaryIO | None = file
        self.size = os.fstat(file.fileno()).st_size
        self._executor = executor

    async def chunks(self, offset: int, count: int) -> AsyncIterator[bytes]:
        if self.file is None:
            raise ValueError("blob reader is closed")
        loop = asyncio.get_running_loop()
        fd = self.file.fileno()
        while count > 0:
            chunk = await loop.run_in_executor(self._executor, os.pread, fd,
                                               min(READ_CHUNK, count), offset)
            if not chunk:
                raise ConnectionResetError("blob file shorter than expected")
            offset += len(chunk)
            count -= len(chunk)
            yield chunk

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def place_file(source: Path, dest: Path) -> None:
    """Hard-link ``source`` to the new name ``dest``; copy when no link is possible (another
    file system, or one without hard links).

    Raises:
        FileNotFoundError: ``source`` does not exist.
    """
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in _LINK_FALLBACK:
            raise
        log.info("blob copied instead of linked", extra={"blob": dest.name, "errno": exc.errno})
        shutil.copyfile(source, dest)
