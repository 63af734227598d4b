"""Which address a request comes from, for the login throttle's per-address budget (pure).

The TCP peer, unless it is one of ``CHATD_TRUSTED_PROXIES``: then the client is named by
``X-Forwarded-For``, read **from the right** — each proxy appends the address it saw — and
the first entry that is not itself a trusted proxy is the client.  Entries to the left of it
were written by the client and are never believed: otherwise anyone could pick the address
their guesses count against.  Without trusted proxies the header is ignored altogether.
(The PROXY protocol is not supported: put chatd behind an HTTP proxy that sets the header.)

IPv6 clients are counted by their /64 network, which one subscriber usually holds whole:
counting single addresses would give one attacker 2**64 budgets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"  # a peer without an IP address (a Unix socket)
IPV6_BUDGET_PREFIX = 64


def parse_address(text: str) -> Address | None:
    """An IP address as a header or a socket gives it, or None (ports and brackets are not
    part of it; an IPv4-mapped IPv6 address is the IPv4 address)."""
    value = text.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1 : value.index("]")]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address, trusted: Iterable[Network]) -> bool:
    return any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client's address as the throttle counts it (see the module's docstring).

    ``forwarded_for`` holds the values of every ``X-Forwarded-For`` header, in order."""
    address = parse_address(peer) if peer is not None else None
    if address is None:
        return UNKNOWN
    if not trusted or not is_trusted(address, trusted):
        return budget_key(address)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        seen = parse_address(hop)
        if seen is None:
            # A trusted proxy passed on garbage: count against that proxy, never against a
            # value the client could vary at will.
            break
        address = seen
        if not is_trusted(seen, trusted):
            break
    return budget_key(address)


def budget_key(address: Address) -> str:
    """What one budget is kept for: an IPv4 address, or an IPv6 address's /64 network."""
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_BUDGET_PREFIX), strict=False)
        return str(network)
    return str(address)
