"""Outbound HTTP that only reaches public addresses unless an endpoint opts in.

``PublicAddressResolver`` wraps an aiohttp resolver: it resolves the name, refuses the whole
answer if ANY address is not public (``registry.addresses``), and hands the connector only the
vetted addresses. The connector connects to exactly those, so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot slip through: there is no second lookup.

aiohttp never asks the resolver about IP literals; ``check_url_host`` covers those before the
request is made. Redirects must not be followed by callers (a 3xx to 127.0.0.1 would bypass
the literal check).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from registry.addresses import a_kind_of_address, literal_refusal, refusal

ALLOW_HINT = "set allow_private_network = true for this endpoint to deliver there"


class RefusedAddress(OSError):
    """The destination is not a public address (an ``OSError`` so aiohttp reports it as a
    connection error, as it does any resolver failure)."""

    def __init__(self, host: str, address: str, why: str) -> None:
        self.host, self.address, self.why = host, address, why
        shown = address if address == host else f"{host} resolves to {address}, which"
        super().__init__(f"refused: {shown} is {a_kind_of_address(why)}; {ALLOW_HINT}")


class PublicAddressResolver(AbstractResolver):
    """Resolves with ``inner`` (default: the loop's getaddrinfo) and lets only public answers
    through.

    Raises (from ``resolve``):
        RefusedAddress: any address of the answer is loopback, link-local, private, ...
        OSError: the inner resolver's errors (``socket.gaierror``), unchanged.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            why = refusal(answer["host"])
            if why is not None:
                raise RefusedAddress(host, answer["host"], why)
        return answers

    async def close(self) -> None:
        await self._inner.close()


def check_url_host(url: str) -> None:
    """Refuse a URL whose host is a non-public IP literal (names are vetted when resolved).

    Raises:
        RefusedAddress: the host is e.g. ``127.0.0.1``, ``[::ffff:10.0.0.1]``, ``169.254.169.254``.
    """
    host = urlsplit(url).hostname or ""
    why = literal_refusal(host)
    if why is not None:
        raise RefusedAddress(host, host, why)
