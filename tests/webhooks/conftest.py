"""A real HTTP receiver on 127.0.0.1 that answers from a script and keeps what it got."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from registry.metadata.store import SQLiteMetadataStore
from tests.events.fakes import FakeClock


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    answers: list[int]  # status per request; the last one repeats
    retry_after: str | None = None
    hang: bool = False  # never answer (timeouts)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(dict(request.headers), await request.read()))
        if self.hang:
            await asyncio.Event().wait()
        status = self.answers[min(len(self.requests), len(self.answers)) - 1]
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        return web.Response(status=status, text="ok" if status < 300 else "no",
                            headers=headers)


async def start_receiver(receiver: Receiver) -> TestServer:
    app = web.Application()
    app.router.add_post("/hooks/berth", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/hooks/berth"))
    return server


@pytest.fixture
async def receiver_factory():
    servers = []

    async def make(answers, **options) -> Receiver:
        receiver = Receiver(list(answers), **options)
        servers.append(await start_receiver(receiver))
        return receiver

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path):
    store = SQLiteMetadataStore(tmp_path / "metadata.db")
    yield store
    await store.close()
