"""Which network addresses Berth's outbound requests (webhooks) may reach without opt-in.

A webhook URL comes from configuration, but its host name resolves at delivery time: a name
that resolves (or is re-pointed) to 127.0.0.1, the cloud metadata service at 169.254.169.254
or a private network would let whoever controls the name make the registry POST into places
only the registry can reach. Such addresses are refused unless the endpoint opts in
(``allow_private_network = true``). Pure: ``ipaddress`` only, so the config loader can use it.
"""

from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: IPv4 reached through a translator

# (why, test) in the order a refusal names them.
_CHECKS = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("private", lambda ip: ip.is_private or getattr(ip, "is_site_local", False)),
    ("reserved", lambda ip: ip.is_reserved or not ip.is_global),
)


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (brackets and an IPv6 zone allowed), else None."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries to the IPv4 network, if any."""
    if ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1
        return ip.ipv4_mapped
    if ip.sixtofour is not None:  # 2002:7f00:1::
        return ip.sixtofour
    if ip in _NAT64:  # 64:ff9b::7f00:1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(address: str) -> str | None:
    """Why an outbound request must not go to ``address`` without opt-in, or None.

    The answer names the kind (``"loopback"``, ``"link-local"``, ``"private"``,
    ``"unspecified"``, ``"multicast"``, ``"reserved"``); an IPv6 form carrying an IPv4 address
    (mapped, 6to4, NAT64) is judged by that address. Not an IP address: ``"not an address"``.
    """
    ip = parse_ip(address)
    if ip is None:
        return "not an address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = refusal(str(embedded))
            return f"{inner} (IPv4 in IPv6)" if inner else None
    for why, test in _CHECKS:
        if test(ip):
            return why
    return None


def a_kind_of_address(why: str) -> str:
    """``"a loopback address"``, ``"an unspecified address"``: for messages."""
    return f"{'an' if why[0] in 'aeiou' else 'a'} {why} address"


def literal_refusal(host: str) -> str | None:
    """For a URL's host: why it is refused when it is an IP literal; None for a name (names
    are judged on the addresses they resolve to, when they are used)."""
    if parse_ip(host) is None:
        return None
    return refusal(host)
