"""A minimal blocking HTTP/1.1 client over a raw socket, built so the client is never the
bottleneck of a throughput benchmark.

Request bodies go out with ``os.sendfile`` straight from a file in the page cache, so pushing a
1 GiB blob costs the client almost no CPU. Large response bodies are read with ``recv_into``
into one reusable multi-MiB buffer and discarded, so pulling does not allocate per chunk.
Small response bodies (errors, JSON) are returned as bytes.

Only what the benchmark needs: one keep-alive connection, Content-Length and chunked response
bodies, redirects of GET/HEAD on request (an S3-backed registry answers a blob GET with 307 to
a presigned URL on another host:port), no TLS. Only loopback addresses are accepted.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_READ_BUFFER = 4 * 1024 * 1024
_SENDFILE_MAX = 1 << 30
_SMALL_BODY_LIMIT = 64 * 1024 * 1024


class HttpError(Exception):
    """An unexpected status or a malformed response."""


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_length: int = 0
    # perf_counter() when the last request byte was handed to the kernel, and when the
    # response head arrived: their difference is the server's work after the upload's end.
    sent_at: float = 0.0
    head_at: float = 0.0
    # Redirects followed on the way to this response: (status, "host:port") per hop. The
    # Location itself is not kept: a presigned URL carries a signature.
    redirects: list[tuple[int, str]] = field(default_factory=list)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def expect(self, *statuses: int) -> "Response":
        if self.status not in statuses:
            raise HttpError(
                f"expected {statuses}, got {self.status} {self.reason}: {self.body[:400]!r}"
            )
        return self


@dataclass(frozen=True)
class FileRange:
    """A request body taken from ``count`` bytes of ``fd`` starting at ``offset``."""

    fd: int
    offset: int
    count: int


class Connection:
    """One keep-alive HTTP/1.1 connection to ``127.0.0.1:port``."""

    def __init__(self, host: str, port: int, *, headers: dict[str, str] | None = None,
                 timeout: float = 300.0) -> None:
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ValueError(f"benchmark traffic goes to loopback only, not {host}")
        self.host = host
        self.port = port
        self.extra_headers = dict(headers or {})
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray(_READ_BUFFER)
        self._view = memoryview(self._buf)
        self._pending = b""

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._pending = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            # Blocking mode so os.sendfile and recv_into never see EAGAIN; the kernel-level
            # timeouts below still bound every call.
            sock.settimeout(None)
            timeval = struct.pack("ll", int(self.timeout), 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def request(self, method: str, target: str, *, headers: dict[str, str] | None = None,
                body: bytes | FileRange | None = None, discard_body: bool = False,
                follow_redirects: bool = False) -> Response:
        """Send one request and read the whole response.

        Args:
            method: HTTP method.
            target: a path with query, or an absolute URL (only its path and query are used,
                as registries answer with absolute or relative ``Location`` headers).
            headers: extra headers for this request (the connection's headers are added).
            body: bytes, or a FileRange sent with sendfile.
            discard_body: read the response body into the scratch buffer and drop it; only
                its length is kept (``Response.body_length``).
            follow_redirects: for GET and HEAD, follow up to 5 redirects (3xx with a
                ``Location``), with this request's headers (a ``Range`` is kept). A Location
                on another host:port is fetched on a new connection that does not carry this
                connection's headers (a registry's credentials are not the object store's).

        Raises:
            HttpError: the response could not be parsed.
            OSError: the connection failed.
        """
        sock = self._connect()
        length = 0 if body is None else (len(body) if isinstance(body, bytes) else body.count)
        lines = [f"{method} {path_of(target)} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        merged = {**self.extra_headers, **(headers or {})}
        if body is not None or method in ("PUT", "POST", "PATCH"):
            merged.setdefault("Content-Length", str(length))
        lines += [f"{k}: {v}" for k, v in merged.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if isinstance(body, bytes):
                sock.sendall(head + body)
            else:
                sock.sendall(head)
                if body is not None:
                    _sendfile_all(sock, body)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (an error) before reading the whole body; read it below.
            pass
        sent_at = time.perf_counter()
        response = self._read_response(method, discard_body)
        response.sent_at = sent_at
        if response.header("connection").lower() == "close":
            self.close()
        if follow_redirects and method in ("GET", "HEAD") and response.status in _REDIRECTS:
            return self._follow(method, target, response, headers, discard_body)
        return response

    def _follow(self, method: str, target: str, response: Response,
                headers: dict[str, str] | None, discard_body: bool) -> Response:
        hops: list[tuple[int, str]] = []
        host, port, url = self.host, self.port, target
        for _ in range(_MAX_REDIRECTS):
            location = response.header("location")
            if response.status not in _REDIRECTS or not location:
                break
            url = urljoin(f"http://{host}:{port}{path_of(url)}", location)
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise HttpError(f"redirect to a {parts.scheme or 'relative'} URL not followed")
            host, port = parts.hostname, parts.port or 80
            hops.append((response.status, f"{host}:{port}"))
            if (host, port) == (self.host, self.port):
                response = self.request(method, url, headers=headers,
                                        discard_body=discard_body)
            else:
                with Connection(host, port, timeout=self.timeout) as other:
                    response = other.request(method, url, headers=headers,
                                             discard_body=discard_body)
        else:
            if response.status in _REDIRECTS:
                raise HttpError(f"more than {_MAX_REDIRECTS} redirects")
        response.redirects = hops
        return response

    # -- response parsing -------------------------------------------------------------------

    def _recv_some(self) -> bytes:
        assert self._sock is not None
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        data = self._sock.recv(65536)
        if not data:
            raise HttpError("connection closed by server")
        return data

    def _read_head(self) -> bytes:
        data = b""
        for _ in range(4096):
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                self._pending = data[end + 4:] + self._pending
                return data[:end]
            data += self._recv_some()
        raise HttpError("response head too large")

    def _read_response(self, method: str, discard_body: bool) -> Response:
        head = self._read_head().decode("latin-1").split("\r\n")
        head_at = time.perf_counter()
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {head[0]!r}")
        response = Response(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "",
                            head_at=head_at)
        for line in head[1:]:
            name, _, value = line.partition(":")
            response.headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200:
            return response
        if "chunked" in response.header("transfer-encoding").lower():
            response.body = self._read_chunked()
            response.body_length = len(response.body)
        elif response.header("content-length"):
            size = int(response.header("content-length"))
            response.body_length = size
            if discard_body:
                self._discard_exactly(size)
            else:
                if size > _SMALL_BODY_LIMIT:
                    raise HttpError(f"body of {size} bytes; use discard_body")
                response.body = self._read_exactly(size)
        else:
            response.body = self._read_to_close()
            response.body_length = len(response.body)
        return response

    def _read_exactly(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            data = self._recv_some()
            take = size - len(out)
            out += data[:take]
            if len(data) > take:
                self._pending = data[take:]
        return bytes(out)

    def _discard_exactly(self, size: int) -> None:
        assert self._sock is not None
        remaining = size
        if self._pending:
            take = min(len(self._pending), remaining)
            self._pending = self._pending[take:]
            remaining -= take
        recv_into, view = self._sock.recv_into, self._view
        while remaining > 0:
            got = recv_into(view, min(remaining, _READ_BUFFER))
            if got == 0:
                raise HttpError(f"connection closed with {remaining} body bytes missing")
            remaining -= got

    def _read_line(self) -> bytes:
        data = b""
        for _ in range(1 << 16):
            end = data.find(b"\r\n")
            if end >= 0:
                self._pending = data[end + 2:] + self._pending
                return data[:end]
            data += self._recv_some()
        raise HttpError("line too long")

    def _read_chunked(self) -> bytes:
        out = bytearray()
        for _ in range(1 << 20):
            size = int(self._read_line().split(b";")[0], 16)
            if size == 0:
                while self._read_line():
                    pass
                return bytes(out)
            out += self._read_exactly(size)
            self._read_line()
            if len(out) > _SMALL_BODY_LIMIT:
                raise HttpError("chunked body too large")
        raise HttpError("too many chunks")

    def _read_to_close(self) -> bytes:
        out = bytearray(self._pending)
        self._pending = b""
        assert self._sock is not None
        while len(out) <= _SMALL_BODY_LIMIT:
            data = self._sock.recv(65536)
            if not data:
                self.close()
                return bytes(out)
            out += data
        raise HttpError("body too large")


def _sendfile_all(sock: socket.socket, body: FileRange) -> None:
    offset, remaining = body.offset, body.count
    out = sock.fileno()
    while remaining > 0:
        sent = os.sendfile(out, body.fd, offset, min(remaining, _SENDFILE_MAX))
        if sent == 0:
            raise HttpError(f"source file ended with {remaining} bytes unsent")
        offset += sent
        remaining -= sent


def path_of(target: str) -> str:
    """The path and query of a URL or path (``Location`` may be absolute or relative)."""
    if target.startswith("/"):
        return target
    parts = urlsplit(target)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def with_query(target: str, key: str, value: str) -> str:
    """Append ``key=value`` to a path that may already carry a query (upload ``_state``)."""
    return f"{path_of(target)}{'&' if '?' in target else '?'}{key}={value}"
