"""The HTTP server loop: aiohttp's, with a deadline on request headers.

aiohttp bounds an idle connection (``keepalive_timeout``, armed from the moment a connection
opens) and the lingering read of an unread body (``lingering_time``), but nothing bounds a
client that sends its request line and headers a byte at a time (slowloris): the idle
timer is only re-armed between requests, so such a client holds its connection for the
whole keep-alive period. ``HeaderDeadlineHandler`` adds that bound: from the first byte of
a request's head, the head must be complete within ``header_timeout`` seconds.

Body timeouts live with the body readers (``registry.http_limits.iter_body``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from registry.config import ServerConfig

log = logging.getLogger(__name__)


class HeaderDeadlineHandler(RequestHandler):
    """aiohttp's per-connection protocol, plus a deadline on each request's head.

    While the connection waits for a request (``_waiter`` pending), any byte received starts
    the head's clock; the head completing (aiohttp resolves ``_waiter``) stops it; the clock
    running out closes the connection. Bytes that arrive while a handler runs are its body
    (or a pipelined request), bounded by the body timeout and the idle timer instead.
    """

    __slots__ = ("_header_timeout", "_header_handle")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_handle: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiting = self._waiter is not None and not self._waiter.done()
        if not waiting:
            self._cancel_header_deadline()
        elif data and self._header_handle is None:
            self._header_handle = self._loop.call_later(self._header_timeout,
                                                        self._header_deadline_passed)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _cancel_header_deadline(self) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None

    def _header_deadline_passed(self) -> None:
        self._header_handle = None
        if self._waiter is not None and not self._waiter.done() and self.transport is not None:
            log.warning("request head not received in time", extra={
                "timeout_seconds": self._header_timeout, "remote": _remote(self)})
            self.force_close()


def _remote(handler: RequestHandler) -> str:
    peer = handler.transport.get_extra_info("peername") if handler.transport else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else "-"


class _Server(web.Server):
    """aiohttp's connection factory, making ``HeaderDeadlineHandler``s."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return HeaderDeadlineHandler(self, loop=self._loop, header_timeout=self._header_timeout,
                                     **self._kwargs)


class LimitedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections carry a header deadline."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout_seconds = header_timeout

    async def _make_server(self) -> web.Server:
        # The application builds its own Server (startup, request factory, handler args);
        # keep every piece of it and change only the protocol class.
        plain = await super()._make_server()
        return _Server(plain.request_handler, request_factory=plain.request_factory,
                       handler_cancellation=plain.handler_cancellation, loop=plain._loop,
                       header_timeout=self._header_timeout_seconds, **plain._kwargs)


def handler_options(server: ServerConfig) -> dict[str, Any]:
    """The aiohttp protocol options that bound a connection's time, from ``[server]``."""
    return {"keepalive_timeout": server.keepalive_timeout_seconds,
            "lingering_time": server.linger_seconds,
            "header_timeout": server.header_timeout_seconds}


def run(app: web.Application, server: ServerConfig, **runner_options: Any) -> None:
    """Serve ``app`` on ``server.listen`` until SIGINT or SIGTERM, as ``web.run_app`` does.

    ``runner_options`` go to the runner (access log, shutdown timeout).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = LimitedAppRunner(app, handle_signals=True, **handler_options(server),
                              **runner_options)
    try:
        loop.run_until_complete(_serve(runner, server))
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            loop.run_until_complete(runner.cleanup())
        finally:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


async def _serve(runner: LimitedAppRunner, server: ServerConfig) -> None:
    await runner.setup()
    site = web.TCPSite(runner, server.host, server.port, reuse_port=server.workers > 1)
    await site.start()
    # Everything built so far (modules, SQLAlchemy's tables and compiled statements, the
    # app) lives as long as the process: keep it out of the cyclic collector's full passes,
    # which otherwise walk it again and again under load.
    gc.collect()
    gc.freeze()
    await asyncio.Event().wait()  # until a signal raises GracefulExit


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
