"""Reading /proc for the harness's process accounting: every process's stat fields, a process
tree, CPU ticks and I/O byte counters of a set of processes."""

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


def descendants(roots: list[int]) -> list[int]:
    """``roots`` (those still alive) and every live process below them, by parent pid."""
    children: dict[int, list[int]] = {}
    alive = set()
    for pid, fields in process_stats():
        if len(fields) > 1 and fields[0] != b"Z":
            alive.add(pid)
            children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], [pid for pid in roots if pid in alive]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """Per pid: utime + stime + cutime + cstime, in clock ticks. Reaped children count, so a
    short-lived helper that exits mid-measurement stays its parent's."""
    ticks = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        ticks[pid] = sum(int(v) for v in fields[11:15])
    return ticks


def io_bytes(pids: list[int]) -> dict[int, tuple[int, int]]:
    """Per pid: (``rchar``, ``wchar``) from /proc/<pid>/io — bytes passed to read-like and
    write-like system calls, sockets and sendfile(2) included, whether or not a disk was
    touched. A process that is gone is left out."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/io", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle.read().splitlines())
            out[pid] = (int(fields[b"rchar"]), int(fields[b"wchar"]))
        except (OSError, KeyError, ValueError):
            continue
    return out
