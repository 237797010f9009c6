"""Bytes a set of processes sent and received over TCP, from the kernel's per-socket counters.

``/proc/<pid>/io`` (``rchar``/``wchar``) counts read(2)/write(2)/sendfile(2) but not
send(2)/recv(2), which is how asyncio and urllib3 move socket data: a blob streamed from S3
through an aiohttp server would not show there. The kernel's TCP counters do:
``ss -tinp`` gives every connected socket's ``bytes_sent`` and ``bytes_received`` (tcp_info)
with the pids holding it. A socket's counters vanish when it closes, so the caller snapshots
while the connections it cares about are still open (a pull's connection, just before the
client closes it); sockets open at the baseline (pooled connections to S3) count from their
baseline values.
"""

from __future__ import annotations

import re
import shutil
import subprocess

SS = shutil.which("ss") or "/usr/bin/ss"
_STATES = ["state", "established", "state", "close-wait", "state", "fin-wait-1",
           "state", "fin-wait-2", "state", "last-ack", "state", "closing"]
_PID = re.compile(r"pid=(\d+)")
_COUNTER = re.compile(r"\b(bytes_sent|bytes_received):(\d+)")

Counters = dict[tuple[str, str], tuple[int, int]]  # (local, peer) -> (sent, received)


def snapshot(pids: list[int]) -> Counters:
    """(bytes sent, bytes received) of every connected TCP socket held by one of ``pids``.

    Raises:
        RuntimeError: ``ss`` failed (iproute2 missing, or not allowed to see the pids).
    """
    done = subprocess.run([SS, "-tinpH", *_STATES], capture_output=True, text=True,
                          timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ss exited {done.returncode}: {done.stderr.strip()}")
    wanted = set(pids)
    out: Counters = {}
    key: tuple[str, str] | None = None
    for line in done.stdout.splitlines():
        if not line.startswith((" ", "\t")):
            fields = line.split()
            owners = {int(p) for p in _PID.findall(line)}
            key = (fields[3], fields[4]) if len(fields) > 4 and owners & wanted else None
            continue
        if key is not None:
            counters = dict(_COUNTER.findall(line))
            out[key] = (int(counters.get("bytes_sent", 0)),
                        int(counters.get("bytes_received", 0)))
            key = None
    return out


class SocketBytes:
    """``baseline()`` once, ``snapshot()`` while the connections of interest are open (as
    often as needed), then ``totals()``: bytes sent and received since the baseline, per
    socket the largest value seen."""

    def __init__(self, pids_of) -> None:
        self._pids_of = pids_of
        self._base: Counters = {}
        self._seen: Counters = {}

    def baseline(self) -> None:
        self._base = snapshot(self._pids_of())
        self._seen = dict(self._base)

    def snapshot(self) -> None:
        for key, (sent, received) in snapshot(self._pids_of()).items():
            old_sent, old_received = self._seen.get(key, (0, 0))
            self._seen[key] = (max(sent, old_sent), max(received, old_received))

    def totals(self) -> tuple[int, int]:
        sent = received = 0
        for key, (s, r) in self._seen.items():
            base_sent, base_received = self._base.get(key, (0, 0))
            sent += s - base_sent
            received += r - base_received
        return sent, received
