"""Unexpected failures are answered in the shape of the API the client speaks, logged once;
a client that goes away mid-body is one warning line, never a traceback.

Faults are injected through ``create_app(metadata=...)`` with ``FailingMetadata``, a
hand-written wrapper of the real SQLite store that raises from one named method.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from registry.app import create_app
from registry.appkeys import METADATA
from registry.config import load_config
from registry.http_limits import ClientDisconnected
from registry.http_server import LimitedAppRunner, handler_options
from registry.metadata.store import SQLiteMetadataStore

TARGET = "AmazonEC2ContainerRegistry_V20150921."
ECR_HEADERS = {"Content-Type": "application/x-amz-json-1.1"}


class InjectedFault(RuntimeError):
    pass


class FailingMetadata:
    """The real metadata store, except that ``fail_on`` raises ``error()`` (by default an
    ``InjectedFault``)."""

    def __init__(self, real: SQLiteMetadataStore, fail_on: str,
                 error: Callable[[], BaseException] | None = None) -> None:
        self._real = real
        self._fail_on = fail_on
        self._error = error or (lambda: InjectedFault(f"injected failure in {fail_on}"))

    def __getattr__(self, name: str) -> Any:
        if name == self._fail_on:
            async def fail(*args: Any, **kwargs: Any) -> Any:
                raise self._error()
            return fail
        return getattr(self._real, name)


@pytest.fixture
def config(tmp_path):
    (tmp_path / "data").mkdir()
    return load_config(environ={}, overrides={"data_dir": str(tmp_path / "data"),
                                              "gc.enabled": False, "auth.enabled": False})


class Served:
    """The app behind Berth's own server loop (``LimitedAppRunner``) on a loopback port."""

    def __init__(self, runner: LimitedAppRunner, session: aiohttp.ClientSession) -> None:
        self.runner = runner
        self.session = session
        self.host, self.port = runner.addresses[0][:2]
        self.caplog = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def post(self, path: str, **kwargs: Any):
        return self.session.post(self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any):
        return self.session.get(self.url(path), **kwargs)


@pytest.fixture
async def serve(config):
    """``serve(fail_on, handler_cancellation=False)``: a running app whose metadata store
    fails in ``fail_on``. Berth's server does not cancel handlers of vanished clients
    (aiohttp's test server would), so that is the default here too."""
    started: list[Served] = []

    async def make(fail_on: str, *, handler_cancellation: bool = False,
                   error: Callable[[], BaseException] | None = None) -> Served:
        # A private data dir from the start, so the only warnings logged are the request's.
        config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config.data_dir.chmod(0o700)
        real = SQLiteMetadataStore(config.metadata_path)
        app = create_app(config, metadata=FailingMetadata(real, fail_on, error))
        runner = LimitedAppRunner(app, handler_cancellation=handler_cancellation,
                                  **handler_options(config.server))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        served = Served(runner, aiohttp.ClientSession())
        started.append(served)
        return served

    yield make
    for served in started:
        await served.session.close()
        await served.runner.cleanup()


def _tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


async def test_unexpected_ecr_failure_is_a_server_exception(serve, caplog):
    client = await serve("describe_repositories")
    response = await client.post("/", data=b"{}", headers={
        **ECR_HEADERS, "X-Amz-Target": TARGET + "DescribeRepositories"})
    assert response.status == 500
    assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
    request_id = response.headers["x-amzn-RequestId"]
    body = await response.json(content_type=None)
    assert body == {"__type": "ServerException",
                    "message": f"internal error (request id {request_id})"}
    assert "injected" not in await response.text()
    logged = _tracebacks(caplog)
    assert len(logged) == 1
    assert logged[0].getMessage() == "unhandled error"
    assert logged[0].aws_request_id == request_id
    assert logged[0].route == "api"
    assert logged[0].request_id == response.headers["X-Request-Id"]


async def test_a_backend_connection_reset_is_the_servers_fault(serve, caplog):
    """A reset connection to a backend is no client disconnect: 500, with its traceback."""
    client = await serve("describe_repositories", error=ConnectionResetError)
    response = await client.post("/", data=b"{}", headers={
        **ECR_HEADERS, "X-Amz-Target": TARGET + "DescribeRepositories"})
    assert response.status == 500
    assert (await response.json(content_type=None))["__type"] == "ServerException"
    assert len(_tracebacks(caplog)) == 1


async def test_a_vanished_client_escaping_a_handler_is_one_line(serve, caplog):
    """The middleware's net for a reader that let ``ClientDisconnected`` through."""
    client = await serve("describe_repositories",
                         error=lambda: ClientDisconnected(ConnectionResetError()))
    response = await client.post("/", data=b"{}", headers={
        **ECR_HEADERS, "X-Amz-Target": TARGET + "DescribeRepositories"})
    assert response.status == 400
    assert (await response.json(content_type=None))["__type"] == "SerializationException"
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == ["client disconnected"]
    assert lines[0].route == "api"
    assert not _tracebacks(caplog)


async def test_unexpected_registry_failure_keeps_the_oci_shape(serve, caplog):
    client = await serve("list_repositories")
    response = await client.get("/v2/_catalog")
    assert response.status == 500
    assert await response.json() == {"errors": [{"code": "UNKNOWN",
                                                 "message": "internal error"}]}
    assert "x-amzn-RequestId" not in response.headers
    assert len(_tracebacks(caplog)) == 1


async def _disconnect_mid_body(client, head: bytes) -> None:
    """Send a head announcing 1,000 body bytes, ten of them, then hang up."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(head + b"0123456789")
    await writer.drain()
    await asyncio.sleep(0.1)  # the handler is reading the body now
    writer.transport.abort()
    for _ in range(100):  # until the server has seen it
        if any(r.getMessage() in {"request body interrupted", "request cancelled"}
               for r in client.caplog.records):
            return
        await asyncio.sleep(0.02)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", "Content-Length: 1000"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("method,path,headers,route", [
    ("POST", "/", {**ECR_HEADERS, "X-Amz-Target": TARGET + "CreateRepository"}, "api"),
    ("PUT", "/v2/edge/app/manifests/v1",
     {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, None),
], ids=["ecr", "manifest"])
async def test_client_gone_mid_body_is_one_line(serve, caplog, method, path, headers, route):
    caplog.set_level(logging.INFO)
    client = await serve("none")
    client.caplog = caplog
    await _disconnect_mid_body(client, _head(method, path, headers))
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == ["request body interrupted"]
    assert lines[0].reason == "client_disconnected"
    assert lines[0].bytes_received == 10
    assert lines[0].request_id != "-"
    if route:
        assert lines[0].route == route
    assert not _tracebacks(caplog)


async def test_client_gone_mid_upload_is_one_line(serve, caplog):
    caplog.set_level(logging.INFO)
    client = await serve("none")
    client.caplog = caplog
    started = await client.post("/v2/edge/upload/blobs/uploads/")
    assert started.status == 202
    await _disconnect_mid_body(client, _head("PATCH", started.headers["Location"], {
        "Content-Type": "application/octet-stream"}))
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == ["request body interrupted"]
    assert not _tracebacks(caplog)
    status = await client.get(started.headers["Location"])
    assert status.headers["Range"] == "0-0"  # nothing of the broken body was kept


async def test_cancelled_handler_is_one_line(serve, caplog):
    """With handler cancellation on, a client hanging up cancels its handler: one line."""
    caplog.set_level(logging.INFO)
    client = await serve("none", handler_cancellation=True)
    client.caplog = caplog
    await _disconnect_mid_body(client, _head("POST", "/", {
        **ECR_HEADERS, "X-Amz-Target": TARGET + "CreateRepository"}))
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1
    assert lines[0].getMessage() == "request cancelled"
    assert lines[0].route == "api"
    assert lines[0].request_id != "-"
    assert not _tracebacks(caplog)


def test_failing_metadata_is_the_real_store_otherwise(config):
    real = SQLiteMetadataStore(config.metadata_path)
    app = create_app(config, metadata=FailingMetadata(real, "describe_repositories"))
    assert app[METADATA].get_repository == real.get_repository
