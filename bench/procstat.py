"""Every process's /proc/<pid>/stat fields, for the harness's process-tree accounting."""

from __future__ import annotations

import os
from typing import Iterator


def process_stats() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the stat fields after the command name) for every process still there: field 0
    is the state, 1 the parent pid, 2 the process group (proc(5) numbering minus 3)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone while we looked
        yield int(entry), stat[stat.rfind(b")") + 2:].split()
