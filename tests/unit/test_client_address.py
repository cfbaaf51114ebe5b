"""The client address behind proxies: forwarding headers count only from trusted proxies."""

import pytest

from backendai_hub.forwarded import (
    LOOPBACK_PROXIES,
    client_address,
    is_trusted,
    normalize,
    parse_networks,
)

LOOPBACK = parse_networks(LOOPBACK_PROXIES)
LB = parse_networks(["127.0.0.1", "::1", "10.0.0.0/24"])  # the proxy and a load balancer network


@pytest.mark.parametrize("peer, xff, trusted, expected", [
    # a direct client: its headers are its own say
    ("198.51.100.7", [], LOOPBACK, "198.51.100.7"),
    ("198.51.100.7", ["203.0.113.1"], LOOPBACK, "198.51.100.7"),
    ("198.51.100.7", ["127.0.0.1"], LOOPBACK, "198.51.100.7"),
    ("127.0.0.2", ["203.0.113.1"], LOOPBACK, "127.0.0.2"),  # only 127.0.0.1 and ::1, not all of 127/8
    # behind the proxy: the address it appended (the rightmost), never what the client put before it
    ("127.0.0.1", ["198.51.100.7"], LOOPBACK, "198.51.100.7"),
    ("127.0.0.1", ["203.0.113.1, 198.51.100.7"], LOOPBACK, "198.51.100.7"),
    ("127.0.0.1", ["203.0.113.1", "198.51.100.7"], LOOPBACK, "198.51.100.7"),  # repeated header
    ("127.0.0.1", ["127.0.0.1, 198.51.100.7"], LOOPBACK, "198.51.100.7"),
    ("::1", [" 2001:db8::5 "], LOOPBACK, "2001:db8::5"),
    # a client on the proxy's own address is a local process, trusted like the proxy
    ("127.0.0.1", ["127.0.0.1"], LOOPBACK, "127.0.0.1"),
    ("127.0.0.1", [], LOOPBACK, "127.0.0.1"),
    # node reports IPv4 clients of a dual-stack socket as IPv4-mapped IPv6
    ("::ffff:127.0.0.1", ["::ffff:198.51.100.7"], LOOPBACK, "198.51.100.7"),
    ("::ffff:198.51.100.7", ["203.0.113.1"], LOOPBACK, "198.51.100.7"),
    # a load balancer in front of the proxy: skipped from the right, the hop before it is the client
    ("127.0.0.1", ["203.0.113.1, 198.51.100.7, 10.0.0.3"], LB, "198.51.100.7"),
    ("127.0.0.1", ["203.0.113.1, 198.51.100.7, 10.0.0.3"], LOOPBACK, "10.0.0.3"),
    ("10.0.0.3", ["198.51.100.7"], LB, "198.51.100.7"),
    ("10.0.0.3", ["198.51.100.7"], LOOPBACK, "10.0.0.3"),
    ("127.0.0.1", ["10.0.0.9, 10.0.0.3"], LB, "10.0.0.9"),  # every hop trusted: the farthest one
    # garbage where a trusted proxy's entry should be: stop at the last hop we trust
    ("127.0.0.1", ["198.51.100.7, not-an-ip"], LOOPBACK, "127.0.0.1"),
    ("127.0.0.1", ["198.51.100.7, 10.0.0.3:443"], LB, "127.0.0.1"),
    ("127.0.0.1", [", ,"], LOOPBACK, "127.0.0.1"),
    # a Unix socket: a local proxy; nothing to count when it says nothing
    (None, ["198.51.100.7"], LOOPBACK, "198.51.100.7"),
    (None, [], LOOPBACK, None),
    # no proxies trusted at all: always the peer
    ("127.0.0.1", ["198.51.100.7"], (), "127.0.0.1"),
])
def test_client_address(peer, xff, trusted, expected):
    assert client_address(peer, xff, trusted) == expected


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1", "127.0.0.1"), (" 10.1.2.3 ", "10.1.2.3"), ("::ffff:10.1.2.3", "10.1.2.3"),
    ("2001:DB8::1", "2001:db8::1"), ("", None), (None, None), ("unknown", None), ("10.0.0.1:80", None),
    ("[::1]", None), ("999.1.1.1", None),
])
def test_normalize(value, expected):
    assert normalize(value) == expected


@pytest.mark.parametrize("peer, expected", [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("127.0.0.2", False),
    ("10.0.0.1", False), ("garbage", False), (None, True),
])
def test_is_trusted(peer, expected):
    assert is_trusted(peer, LOOPBACK) is expected


def test_parse_networks_takes_addresses_and_cidrs_and_names_a_bad_entry():
    nets = parse_networks(["10.0.0.0/8", "192.168.1.5", "fd00::/8", "10.1.2.3/16"])
    assert [str(n) for n in nets] == ["10.0.0.0/8", "192.168.1.5/32", "fd00::/8", "10.1.0.0/16"]
    with pytest.raises(ValueError, match="'proxy.internal' is not an IP address or network"):
        parse_networks(["127.0.0.1", "proxy.internal"])
