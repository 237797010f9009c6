"""Raw-socket HTTP for hostile clients: half-sent heads, stalled bodies, idle connections.

Real HTTP libraries finish what they start; these helpers stop wherever a test says, and
tell when (and how) the server ended the connection.
"""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TARGET = "AmazonEC2ContainerRegistry_V20150921."


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Ending:
    """How a connection ended, as seen by the client."""

    closed: bool  # the server closed or reset it
    seconds: float  # after how long (from the call), or the whole wait when not closed
    received: bytes  # what the server sent first (a response, if any)

    @property
    def status(self) -> int | None:
        if not self.received.startswith(b"HTTP/1.1 "):
            return None
        return int(self.received[9:12])

    def json(self) -> dict:
        return json.loads(self.received.split(b"\r\n\r\n", 1)[1] or b"{}")


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, read from a blocking socket."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head_part, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head_part.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head_part + b"\r\n\r\n" + body


def wait_closed(sock: socket.socket, within: float) -> Ending:
    """Read until the server closes the connection or ``within`` seconds pass."""
    return wait_all_closed([sock], within)[0]


def wait_all_closed(sockets: list[socket.socket], within: float) -> list[Ending]:
    """``wait_closed`` for many connections at once, with one deadline for all."""
    started = time.monotonic()
    received = {sock: bytearray() for sock in sockets}
    endings: dict[socket.socket, Ending] = {}
    for sock in sockets:
        sock.setblocking(False)
    while len(endings) < len(sockets) and (left := within - (time.monotonic() - started)) > 0:
        ready, _, _ = select.select([s for s in sockets if s not in endings], [], [], left)
        for sock in ready:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                endings[sock] = Ending(True, time.monotonic() - started, bytes(received[sock]))
            elif len(received[sock]) < 65536:
                received[sock] += chunk
    waited = time.monotonic() - started
    return [endings.get(sock) or Ending(False, waited, bytes(received[sock]))
            for sock in sockets]


def signed_headers(url: str, operation: str, body: bytes, key_id: str, secret: str, *,
                   region: str = "us-east-1") -> dict[str, str]:
    """The headers boto3 sends for ``operation`` with ``body``, signed by botocore."""
    request = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + operation})
    SigV4Auth(Credentials(key_id, secret), "ecr", region).add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = url.split("://", 1)[1]
    headers["Content-Length"] = str(len(body))
    return headers


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
