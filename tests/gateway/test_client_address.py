"""The client address rule (chatd.gateway.client_address), pure: examples and properties."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from chatd.gateway.client_address import UNKNOWN, client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))
public = st.ip_addresses(v=4).filter(lambda a: not any(a in n for n in PROXIES)).map(str)
proxy = st.integers(1, 2**24 - 2).map(lambda i: str(ipaddress.IPv4Address(0x0A000000 + i)))
anything = st.one_of(public, proxy, st.text(max_size=20))


def test_examples() -> None:
    assert client_address("192.0.2.1", ["203.0.113.9"], ()) == "192.0.2.1"
    assert client_address("192.0.2.1", ["203.0.113.9"], PROXIES) == "192.0.2.1"
    assert client_address("127.0.0.1", ["203.0.113.9"], PROXIES) == "203.0.113.9"
    assert client_address("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3"], PROXIES) == (
        "203.0.113.9"
    )
    assert client_address("127.0.0.1", ["6.6.6.6", "203.0.113.9"], PROXIES) == "203.0.113.9"
    assert client_address("127.0.0.1", [], PROXIES) == "127.0.0.1"
    assert client_address("127.0.0.1", ["garbage, 10.1.2.3"], PROXIES) == "10.1.2.3"
    assert client_address("::ffff:192.0.2.7", [], ()) == "192.0.2.7"
    assert client_address("2001:db8:1:2:3:4:5:6", [], ()) == "2001:db8:1:2::/64"
    assert client_address(None, ["203.0.113.9"], PROXIES) == UNKNOWN


@given(st.lists(anything, max_size=5), public, st.lists(proxy, max_size=3))
def test_what_the_client_writes_never_names_it(
    written: list[str], seen: str, inner: list[str]
) -> None:
    """Whatever a client puts in front, the address the trusted proxies saw is the one."""
    header = ", ".join([*written, seen, *inner])
    assert client_address("127.0.0.1", [header], PROXIES) == seen


@given(public, st.lists(anything, max_size=5))
def test_an_untrusted_peer_is_the_client(peer: str, header: list[str]) -> None:
    assert client_address(peer, [", ".join(header)], PROXIES) == peer
    assert client_address(peer, [", ".join(header)], ()) == peer
