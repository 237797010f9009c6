"""The data directory is private: 0700 for it and every directory in it, 0600 for every file.

It holds the master key, the credentials file, the metadata database (secrets sealed with the
master key, policies, audit-relevant history) and every blob of every account, so nobody but
the user running Berth may read it. Two measures, so that neither depends on the other:

- ``private_umask()`` / ``PRIVATE_UMASK``: every entry point that writes the data directory
  (``berth serve`` and its workers, and the ``berth`` commands that open the data directory)
  runs with umask 077, so whatever creates a file in it — our code, SQLite (its -wal/-shm
  copy the database file's mode), prometheus-client, Trivy — creates it 0600 (directories
  0700), whatever umask the operator's shell had.
- ``ensure_data_dir()``: the directory itself is created 0700, and an existing one that is
  open to group or others is made 0700 (with a warning, once, by the process that finds it),
  which closes everything below it even if files inside predate this rule.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run the body with umask 077; the previous umask is restored afterwards (the ``berth``
    command may run in-process, e.g. in tests, where the caller's umask must survive)."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def ensure_data_dir(path: str | os.PathLike[str]) -> Path:
    """Create the data directory 0700, or make an existing one 0700; return it.

    Missing parents are created too (with the process umask, as ``mkdir -p`` would).

    Raises:
        OSError: it cannot be created, or is not a directory, or its mode cannot be changed
            (e.g. owned by another user).
    """
    directory = Path(path)
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode == DIRECTORY_MODE:
        return directory
    os.chmod(directory, DIRECTORY_MODE)
    if mode & 0o077:
        log.warning("data directory was open to other users; made it private (0700)",
                    extra={"path": str(directory), "previous_mode": f"{mode:04o}"})
    return directory
