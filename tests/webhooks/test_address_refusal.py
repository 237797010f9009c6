"""Webhook destinations must be public addresses unless the endpoint opts in (issue 8 §6).

A URL whose host is, or resolves to, loopback, link-local, private, unspecified, multicast or
reserved space (or an IPv6 form carrying such an IPv4 address) is refused: at config load for
IP literals, at delivery on the resolved addresses, recorded in the delivery log as a
permanent failure. Names are resolved by a hand-written resolver behind aiohttp's
``AbstractResolver`` (``MapResolver``), except ``localhost``, which resolves for real.
"""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver

from registry.addresses import literal_refusal, refusal
from registry.config import ConfigError, load_config
from registry.outbound import PublicAddressResolver, RefusedAddress
from scanner.webhooks import DeliveryStatus
from tests.webhooks.pipeline import SECRET, Pipeline, endpoint, push_image


class MapResolver(AbstractResolver):
    """Names to chosen addresses, as DNS would answer them; unknown names fail like DNS."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}
                for address in self.answers[host]]

    async def close(self) -> None:
        pass


# -- which addresses ---------------------------------------------------------------------------

ADDRESSES = [
    # (address, refused as, description)
    ("127.0.0.1", "loopback", "IPv4 loopback"),
    ("127.45.6.7", "loopback", "all of 127.0.0.0/8"),
    ("::1", "loopback", "IPv6 loopback"),
    ("169.254.169.254", "link-local", "cloud metadata service"),
    ("fe80::1", "link-local", "IPv6 link-local"),
    ("fe80::1%eth0", "link-local", "IPv6 link-local with a zone"),
    ("10.0.0.1", "private", "10/8"),
    ("172.16.0.1", "private", "172.16/12, first"),
    ("172.31.255.254", "private", "172.16/12, last"),
    ("192.168.1.10", "private", "192.168/16"),
    ("fc00::1", "private", "unique local fc00::/7"),
    ("fd00:ec2::254", "private", "unique local (EC2's IPv6 metadata)"),
    ("0.0.0.0", "unspecified", "IPv4 any"),
    ("::", "unspecified", "IPv6 any"),
    ("224.0.0.251", "multicast", "IPv4 multicast"),
    ("ff02::1", "multicast", "IPv6 multicast"),
    ("100.64.0.1", "reserved", "carrier-grade NAT"),
    ("::ffff:127.0.0.1", "loopback (IPv4 in IPv6)", "IPv4-mapped loopback"),
    ("::ffff:10.1.2.3", "private (IPv4 in IPv6)", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "link-local (IPv4 in IPv6)", "IPv4-mapped metadata"),
    ("2002:7f00:1::", "loopback (IPv4 in IPv6)", "6to4 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "link-local (IPv4 in IPv6)", "NAT64 of 169.254.169.254"),
    ("172.32.0.1", None, "just outside 172.16/12"),
    ("93.184.216.34", None, "public IPv4"),
    ("2606:4700:4700::1111", None, "public IPv6"),
    ("::ffff:93.184.216.34", None, "IPv4-mapped public"),
]


@pytest.mark.parametrize("address,why,description", ADDRESSES,
                         ids=[a[2] for a in ADDRESSES])
def test_address_table(address, why, description):
    assert refusal(address) == why


@pytest.mark.parametrize("host,why", [
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("hooks.example.com", None),
    ("localhost", None),  # a name: judged on what it resolves to, at delivery
])
def test_literal_refusal_judges_only_ip_literals(host, why):
    assert literal_refusal(host) == why


# -- at config load: IP literals ---------------------------------------------------------------

def hook_config(tmp_path, url: str, extra: str = ""):
    path = tmp_path / "berth.toml"
    path.write_text(f'[[webhooks]]\nurl = "{url}"\nsecret = "{SECRET}"\n{extra}')
    return load_config(path, environ={})


@pytest.mark.parametrize("url,message", [
    ("http://127.0.0.1:9000/hook", "127.0.0.1 is a loopback address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("https://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
    ("http://[::ffff:10.0.0.1]:8080/", "::ffff:10.0.0.1 is a private (IPv4 in IPv6) address"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
])
def test_config_refuses_private_literals(tmp_path, url, message):
    with pytest.raises(ConfigError) as info:
        hook_config(tmp_path, url)
    [problem] = info.value.problems
    assert problem == (f"webhooks[0].url: {message}; set allow_private_network = true for "
                       "this endpoint to deliver there")


def test_config_accepts_opt_in_and_names(tmp_path):
    config = hook_config(tmp_path, "http://127.0.0.1:9000/hook", "allow_private_network = true\n")
    assert config.webhooks[0].allow_private_network is True
    # Names are not resolved at load time (DNS may change; delivery checks every time).
    assert hook_config(tmp_path, "https://localhost/hook").webhooks[0].url


# -- at delivery: the resolved addresses ---------------------------------------------------------

async def deliver(store, clock, hook, resolver=None):
    pipeline = await Pipeline.open(store, [hook], clock, resolver=resolver)
    await push_image(store)
    await pipeline.worker.run_until_idle()
    clock.advance(24 * 3600)  # a refusal is permanent: nothing is due later
    assert await pipeline.worker.run_until_idle() == 0
    [delivery] = await pipeline.deliveries.recent(history=True)
    await pipeline.close()
    return delivery


def assert_refused(delivery, text: str) -> None:
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == 1 and delivery.last_status_code is None
    assert delivery.last_error == text
    assert SECRET not in delivery.last_error


async def test_loopback_literal_is_refused_without_a_connection(store, clock, receiver_factory):
    receiver = await receiver_factory([200])
    delivery = await deliver(store, clock, endpoint(receiver.url, allow_private_network=False))
    host = receiver.url.split("/")[2].split(":")[0]
    assert_refused(delivery, f"refused: {host} is a loopback address; set "
                             "allow_private_network = true for this endpoint to deliver there")
    assert receiver.requests == []


async def test_ipv4_mapped_literal_is_refused(store, clock, receiver_factory):
    receiver = await receiver_factory([200])
    port = receiver.url.split("/")[2].split(":")[1]
    url = f"http://[::ffff:127.0.0.1]:{port}/hooks/berth"
    delivery = await deliver(store, clock, endpoint(url, allow_private_network=False))
    assert delivery.last_error.startswith(
        "refused: ::ffff:127.0.0.1 is a loopback (IPv4 in IPv6) address")
    assert receiver.requests == []


@pytest.mark.parametrize("answers,shown", [
    (["10.0.0.7"], "10.0.0.7, which is a private address"),
    (["169.254.169.254"], "169.254.169.254, which is a link-local address"),
    (["fd00::5"], "fd00::5, which is a private address"),
    (["93.184.216.34", "127.0.0.1"], "127.0.0.1, which is a loopback address"),  # any one
    (["::ffff:192.168.0.9"], "::ffff:192.168.0.9, which is a private (IPv4 in IPv6) address"),
])
async def test_a_name_resolving_to_a_private_address_is_refused(store, clock, answers, shown):
    resolver = MapResolver({"hooks.example.test": answers})
    hook = endpoint("https://hooks.example.test/berth", allow_private_network=False)
    delivery = await deliver(store, clock, hook, resolver)
    assert_refused(delivery, f"refused: hooks.example.test resolves to {shown}; set "
                             "allow_private_network = true for this endpoint to deliver there")
    assert resolver.lookups == ["hooks.example.test"]  # one lookup: what is vetted is used


async def test_localhost_resolves_for_real_and_is_refused(store, clock, receiver_factory):
    receiver = await receiver_factory([200])
    url = receiver.url.replace("127.0.0.1", "localhost")
    delivery = await deliver(store, clock, endpoint(url, allow_private_network=False))
    assert delivery.last_error.startswith("refused: localhost resolves to ")
    assert "which is a loopback address" in delivery.last_error
    assert delivery.status is DeliveryStatus.FAILED and receiver.requests == []


async def test_opt_in_delivers_to_the_resolved_private_address(store, clock, receiver_factory):
    receiver = await receiver_factory([200])
    port = receiver.url.split("/")[2].split(":")[1]
    # The name exists only in this resolver: the delivery lands on the address it answered.
    resolver = MapResolver({"receiver.internal": ["127.0.0.1"]})
    hook = endpoint(f"http://receiver.internal:{port}/hooks/berth", allow_private_network=True)
    delivery = await deliver(store, clock, hook, resolver)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.last_status_code == 200
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["Host"] == f"receiver.internal:{port}"


async def test_unknown_names_stay_retryable_network_errors(store, clock):
    resolver = MapResolver({})
    hook = endpoint("https://nowhere.example.test/berth", allow_private_network=False)
    pipeline = await Pipeline.open(store, [hook], clock, resolver=resolver)
    await push_image(store)
    await pipeline.worker.run_until_idle()
    [delivery] = await pipeline.deliveries.recent()
    await pipeline.close()
    assert delivery.status is DeliveryStatus.RETRYING
    assert delivery.last_error.startswith("ClientConnectorDNSError")


async def test_public_answers_pass_the_resolver_unchanged():
    answers = {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::248"]}
    resolver = PublicAddressResolver(MapResolver(answers))
    resolved = await resolver.resolve("hooks.example.com", 443)
    assert [r["host"] for r in resolved] == answers["hooks.example.com"]
    with pytest.raises(RefusedAddress) as info:
        await PublicAddressResolver(MapResolver({"x.test": ["10.9.8.7"]})).resolve("x.test")
    assert (info.value.host, info.value.address, info.value.why) == ("x.test", "10.9.8.7",
                                                                     "private")
    assert isinstance(info.value, OSError)  # aiohttp reports it as a connection error
