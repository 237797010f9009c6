"""Half-sent requests and idle connections are dropped after the configured time.

``tight`` runs with 1-second head and body timeouts and a 60-second idle timeout, ``idle``
with a 2-second idle timeout (conftest.py). Each test stops a raw client somewhere a real one
never would and checks that the server ends the connection (or answers and ends it) well
within a bound that the defaults (30 s head, 60 s body, 75 s idle) or no timeout at all
would miss.
"""

from __future__ import annotations

import json
import time

import requests

from tests.edge.conftest import registry_token, start_upload
from tests.edge.rawhttp import connect, head, read_response, signed_headers, wait_closed

BOUND = 8.0  # seconds: configured timeouts are 1-2 s; generous for a loaded machine


def test_slowloris_head_is_dropped(tight):
    sock = connect(tight.server.port)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    # Keep trickling header bytes: each one is progress of a kind, never a whole head.
    ending = None
    while time.monotonic() - started < BOUND + 2:
        try:
            sock.sendall(b"X")
        except OSError:
            break
        ending = wait_closed(sock, within=0.3)
        if ending.closed:
            break
    assert ending is not None and ending.closed, "head trickled for too long"
    assert time.monotonic() - started < BOUND
    assert ending.received == b""  # dropped, not answered
    sock.close()


def test_partial_head_then_silence_is_dropped(tight):
    sock = connect(tight.server.port)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")
    ending = wait_closed(sock, within=BOUND)
    sock.close()
    assert ending.closed


def test_a_prompt_head_is_unaffected(tight):
    """The head deadline is per request: one keep-alive connection serves many, with pauses
    between them longer than the deadline."""
    sock = connect(tight.server.port)
    for _ in range(3):
        sock.sendall(head("GET", "/healthz", {"Host": "x"}))
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)
    sock.close()


def test_a_head_that_arrives_in_pieces_in_time_is_served(tight):
    sock = connect(tight.server.port)
    for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
        sock.sendall(piece)
        time.sleep(0.2)
    ending = wait_closed(sock, within=0.5)
    sock.close()
    assert ending.received.startswith(b"HTTP/1.1 200")


def test_idle_keepalive_connection_is_closed(idle):
    sock = connect(idle.server.port)
    sock.sendall(head("GET", "/healthz", {"Host": "x"}))
    ending = wait_closed(sock, within=BOUND)
    sock.close()
    assert ending.received.startswith(b"HTTP/1.1 200")
    assert ending.closed  # after the 2 s idle timeout, not the 75 s default


def test_a_connection_that_never_speaks_is_closed(idle):
    sock = connect(idle.server.port)
    ending = wait_closed(sock, within=BOUND)
    sock.close()
    assert ending.closed and ending.received == b""


def test_stalled_ecr_body_times_out(tight):
    body = json.dumps({"repositoryName": "stalled/ecr"}).encode()
    headers = signed_headers(tight.url, "CreateRepository", body, tight.admin.key_id,
                             tight.admin.secret)
    sock = connect(tight.server.port)
    sock.sendall(head("POST", "/", headers) + body[:10])
    ending = wait_closed(sock, within=BOUND)
    sock.close()
    assert ending.closed
    assert ending.status == 408
    assert ending.json()["__type"] == "RequestTimeoutException"
    names = [r["repositoryName"] for r in tight.client().describe_repositories()["repositories"]]
    assert "stalled/ecr" not in names


def test_stalled_blob_upload_times_out(tight):
    location = start_upload(tight, "edge/stalled-upload")
    headers = {"Host": tight.server.host, **registry_token(tight),
               "Content-Type": "application/octet-stream", "Content-Length": str(1 << 20)}
    sock = connect(tight.server.port)
    sock.sendall(head("PATCH", location, headers) + b"a" * 10_000)
    ending = wait_closed(sock, within=BOUND)
    sock.close()
    assert ending.closed
    assert ending.status == 400
    assert ending.json()["errors"][0]["code"] == "SIZE_INVALID"
    # Nothing of the stalled body was kept: the session is still at offset 0.
    status = requests.get(tight.url + location, headers=registry_token(tight), timeout=10)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"


def test_stalled_manifest_body_times_out(tight):
    headers = {"Host": tight.server.host, **registry_token(tight),
               "Content-Type": "application/vnd.oci.image.manifest.v1+json",
               "Content-Length": "5000"}
    sock = connect(tight.server.port)
    sock.sendall(head("PUT", "/v2/edge/stalled-manifest/manifests/v1", headers) + b"{")
    ending = wait_closed(sock, within=BOUND)
    sock.close()
    assert ending.closed
    assert ending.status == 400
    assert ending.json()["errors"][0]["code"] == "SIZE_INVALID"
