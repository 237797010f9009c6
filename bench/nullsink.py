"""A null registry: answers the blob upload protocol while discarding every body byte, and
serves any blob GET from one file. It stores nothing and hashes nothing, so its throughput is
the ceiling of the benchmark client plus loopback TCP; a target that reaches it is measuring
the client, not itself.

Downloads are sent with read + write in 1 MiB pieces by default, or with sendfile(2) under
``--sendfile``: on loopback a plain copy is not slower than sendfile, and on the 2-core
benchmark VM it was measured faster (see bench/README.md), so both are offered.

Run by the harness as ``python3 bench/nullsink.py --port P [--serve-file F] [--sendfile]``;
loopback only.
"""

from __future__ import annotations

import argparse
import os
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_BUFFER = 4 * 1024 * 1024
_COPY_PIECE = 1024 * 1024


class NullHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    serve_file: str | None = None
    use_sendfile = False

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def _discard_body(self) -> int:
        remaining = int(self.headers.get("Content-Length") or 0)
        total, view = remaining, memoryview(bytearray(_BUFFER))
        while remaining > 0:
            got = self.rfile.readinto(view[:min(remaining, _BUFFER)])
            if not got:
                break
            remaining -= got
        return total - remaining

    def _reply(self, status: int, headers: dict[str, str] | None = None,
               body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self._discard_body()
        path = urlsplit(self.path).path
        self._reply(202, {"Location": f"{path.rstrip('/')}/{uuid.uuid4()}", "Range": "0-0"})

    def do_PATCH(self) -> None:
        size = self._discard_body()
        end = self.headers.get("Content-Range", "0-0").split("-")[-1]
        self._reply(202, {"Location": urlsplit(self.path).path,
                          "Range": f"0-{end if size else 0}"})

    def do_PUT(self) -> None:
        self._discard_body()
        query = parse_qs(urlsplit(self.path).query)
        digest = (query.get("digest") or [""])[0]
        self._reply(201, {"Docker-Content-Digest": digest, "Location": "/"})

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/v2/":
            self._reply(200, {"Content-Type": "application/json"}, b"{}")
        elif "/blobs/" in path and self.serve_file:
            self._send_file(self.serve_file)
        else:
            self._reply(404)

    def _send_file(self, file_path: str) -> None:
        size = os.path.getsize(file_path)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()
        with open(file_path, "rb", buffering=0) as source:
            if self.use_sendfile:
                offset = 0
                while offset < size:
                    sent = os.sendfile(self.connection.fileno(), source.fileno(), offset,
                                       size - offset)
                    if sent == 0:
                        break
                    offset += sent
                return
            piece = memoryview(bytearray(_COPY_PIECE))
            while True:
                got = source.readinto(piece)
                if not got:
                    break
                self.connection.sendall(piece[:got])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--serve-file")
    parser.add_argument("--sendfile", action="store_true")
    args = parser.parse_args()
    NullHandler.serve_file = args.serve_file
    NullHandler.use_sendfile = args.sendfile
    server = ThreadingHTTPServer(("127.0.0.1", args.port), NullHandler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
