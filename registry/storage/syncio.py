"""Small durable-write primitives for the filesystem store."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_SYNC_FILE_RANGE_WRITE = 2

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong,
                                 ctypes.c_uint)
except (OSError, AttributeError):  # not Linux: rely on the final fsync alone
    _sync_file_range = None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range back now, without waiting.

    Spreading writeback over the upload keeps the final fsync short, so a large push is
    acknowledged at disk speed rather than after one long flush at the end.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    _fsync(path, os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    _fsync(path, 0)


def write_durably(path: Path, data: bytes) -> None:
    """Write a whole file and fsync it (not its directory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
