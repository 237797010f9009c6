"""Unauthenticated clients cannot make the server buffer their bodies.

40 clients announce 31 MiB UploadLayerPart bodies on the ECR endpoint without valid
credentials, push several MiB each, then stall. The server must answer them from the headers
alone (AWS's authentication error), drop what they keep sending, and stay small while they
hang: its RSS stays under 150 MiB, where reading the bodies first would cost over 300 MiB.
"""

from __future__ import annotations

import errno
import select
import socket
import time

from tests.edge.rawhttp import TARGET, connect, head, rss_kib, wait_all_closed

CLIENTS = 40
ANNOUNCED = 31 * 1024 * 1024
SENT = 8 * 1024 * 1024  # per client, before it stalls
CHUNK = b"\0" * 65536  # one buffer, sent over and over: the test itself stays small
RSS_LIMIT_KIB = 150 * 1024


def _head(index: int, host: str) -> bytes:
    headers = {"Host": host, "Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": TARGET + "UploadLayerPart", "Content-Length": str(ANNOUNCED)}
    if index % 2:  # half forge a SigV4 header, half send none at all
        headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=AKIAFORGEDFORGED0000/"
                                    "20240101/us-east-1/ecr/aws4_request, SignedHeaders=host, "
                                    "Signature=" + "0" * 64)
        headers["X-Amz-Date"] = "20240101T000000Z"
    return head("POST", "/", headers)


def _pump(sockets: list[socket.socket], pid: int, seconds: float) -> int:
    """Send each socket's body share without blocking; return the peak server RSS seen."""
    sent = {sock: 0 for sock in sockets}
    peak = rss_kib(pid)
    deadline = time.monotonic() + seconds
    while sent and time.monotonic() < deadline:
        _, writable, _ = select.select([], list(sent), [], 0.2)
        for sock in writable:
            try:
                sent[sock] += sock.send(CHUNK[:min(len(CHUNK), SENT - sent[sock])])
            except BlockingIOError:
                continue
            except OSError as exc:  # the server answered and closed: nothing more to send
                assert exc.errno in (errno.EPIPE, errno.ECONNRESET), exc
                del sent[sock]
                continue
            if sent[sock] >= SENT:
                del sent[sock]
        peak = max(peak, rss_kib(pid))
    return peak


def test_stalled_unauthenticated_bodies_cost_no_memory(relaxed):
    server = relaxed.server
    sockets = [connect(server.port) for _ in range(CLIENTS)]
    for index, sock in enumerate(sockets):
        sock.sendall(_head(index, server.host))
        sock.setblocking(False)
    peak = _pump(sockets, server.pid, seconds=30)
    time.sleep(1)  # all stalled now
    peak = max(peak, rss_kib(server.pid))
    print(f"peak server RSS {peak // 1024} MiB")
    if peak >= RSS_LIMIT_KIB:
        for sock in sockets:
            sock.close()
    assert peak < RSS_LIMIT_KIB, f"server RSS reached {peak // 1024} MiB"
    endings = wait_all_closed(sockets, within=20)
    for sock in sockets:
        sock.close()
    # Each got AWS's answer from its headers alone (or a reset once the linger was over),
    # and every connection was closed by the server.
    assert all(ending.closed for ending in endings)
    answered = [ending for ending in endings if ending.received]
    assert answered, "no client saw an answer"
    for ending in answered:
        assert ending.status in (400, 403)
        assert ending.json()["__type"] in {"MissingAuthenticationTokenException",
                                          "UnrecognizedClientException",
                                          "InvalidSignatureException"}
    # The server is still fine for everyone else.
    assert relaxed.client().describe_repositories()["repositories"] is not None
