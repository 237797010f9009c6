"""Berth's server loop: the [server] timeouts reach aiohttp, and closed connections leave
nothing behind.

In-process, on a loopback port, with the production runner (``LimitedAppRunner``).
"""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiohttp import web

from registry.app import create_app
from registry.config import ConfigError, load_config
from registry.http_server import HeaderDeadlineHandler, LimitedAppRunner, handler_options


@pytest.fixture
def config(tmp_path):
    return load_config(environ={"BERTH_SERVER__HEADER_TIMEOUT_SECONDS": "7",
                                "BERTH_SERVER__KEEPALIVE_TIMEOUT_SECONDS": "11",
                                "BERTH_SERVER__LINGER_SECONDS": "0"},
                       overrides={"data_dir": str(tmp_path / "data"), "gc.enabled": False,
                                  "auth.enabled": False})


@pytest.fixture
async def runner(config):
    runner = LimitedAppRunner(create_app(config), **handler_options(config.server))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner
    await runner.cleanup()


def _handlers() -> list[HeaderDeadlineHandler]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, HeaderDeadlineHandler)]


async def _wait_for(condition, attempts: int = 200) -> bool:
    for _ in range(attempts):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def test_connections_get_the_configured_timeouts(runner):
    host, port = runner.addresses[0][:2]
    reader, writer = await asyncio.open_connection(host, port)
    assert await _wait_for(lambda: runner.server.connections)
    handler = runner.server.connections[0]
    assert isinstance(handler, HeaderDeadlineHandler)
    assert handler.keepalive_timeout == 11
    assert handler._header_timeout == 7
    assert handler._lingering_time == 0
    writer.write(b"GET /healthz HTTP/1.1\r\nHost")  # a head begun: its deadline is armed
    await writer.drain()
    assert await _wait_for(lambda: handler._header_handle is not None)
    writer.write(b": x\r\n\r\n")  # and finished: disarmed
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    assert handler._header_handle is None
    writer.close()


async def test_closed_connections_leave_nothing_behind(runner):
    host, port = runner.addresses[0][:2]
    before = len(_handlers())
    writers = []
    for _ in range(20):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")  # half a head each
        writers.append(writer)
    for writer in writers:
        await writer.drain()
    assert await _wait_for(lambda: len(runner.server.connections) == 20)
    assert await _wait_for(lambda: all(h._header_handle is not None
                                       for h in runner.server.connections))
    for writer in writers:
        writer.transport.abort()
    assert await _wait_for(lambda: not runner.server.connections)
    del writers
    assert await _wait_for(lambda: len(_handlers()) <= before)


@pytest.mark.parametrize("key,value", [
    ("HEADER_TIMEOUT_SECONDS", "0"), ("BODY_TIMEOUT_SECONDS", "0"),
    ("KEEPALIVE_TIMEOUT_SECONDS", "0"), ("HEADER_TIMEOUT_SECONDS", "3601"),
    ("LINGER_SECONDS", "-1"), ("LINGER_SECONDS", "61"), ("BODY_TIMEOUT_SECONDS", "soon")])
def test_timeouts_are_range_checked(key, value):
    with pytest.raises(ConfigError) as caught:
        load_config(environ={f"BERTH_SERVER__{key}": value})
    assert any(problem.startswith(f"server.{key.lower()}") for problem in caught.value.problems)


def test_timeout_defaults():
    server = load_config(environ={}).server
    assert (server.header_timeout_seconds, server.body_timeout_seconds,
            server.keepalive_timeout_seconds, server.linger_seconds) == (30, 60, 75, 5)
