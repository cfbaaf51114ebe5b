"""Session networking, pure parts: the egress policy parser, the firewall rule builders, the network options."""

import pytest

from backendai_hub.egress import METADATA_ADDRESS, AllowEntry, EgressPolicy, parse_allow_entry
from backendai_hub.spawner import firewall
from backendai_hub.spawner.firewall import (
    Firewall,
    FirewallUnavailable,
    Rule,
    egress_chain,
    egress_rules,
    guard_chain,
    host_guard_rules,
    route_localnet_sysctl,
    tag_comment,
)
from backendai_hub.spawner.network import bridge_name, session_network_options


@pytest.mark.parametrize("entry, expected", [
    ("10.1.2.3:443", AllowEntry("10.1.2.3/32", 443)),
    ("10.0.0.0/8:80", AllowEntry("10.0.0.0/8", 80)),
    (" 192.0.2.7:1 ", AllowEntry("192.0.2.7/32", 1)),
    ("198.18.0.2:65535", AllowEntry("198.18.0.2/32", 65535)),
])
def test_allow_entry_parses(entry, expected):
    assert parse_allow_entry(entry) == expected


@pytest.mark.parametrize("entry, says", [
    ("10.1.2.3", "host:port"),
    (":443", "host:port"),
    ("10.1.2.3:", "port"),
    ("10.1.2.3:0", "port"),
    ("10.1.2.3:65536", "port"),
    ("10.1.2.3:http", "port"),
    ("10.1.2.3:-1", "port"),
    ("example.com:443", "not an IPv4"),
    ("10.0.0.1/8:80", "not an IPv4"),  # host bits set: almost certainly a typo
    ("10.0.0.0/33:80", "not an IPv4"),
    ("[::1]:443", "not an IPv4"),
    ("::1:443", "IPv4"),
    (443, "string"),
])
def test_bad_allow_entry_is_named(entry, says):
    with pytest.raises(ValueError) as e:
        parse_allow_entry(entry)
    assert repr(entry) in str(e.value) and says in str(e.value)


@pytest.mark.parametrize("mode, allowlist, expected", [
    ("none", None, EgressPolicy("none")),
    ("open", [], EgressPolicy("open")),
    ("allowlist", [], EgressPolicy("allowlist")),
    ("allowlist", ["10.1.2.3:443", "10.1.2.3:443", "10.0.0.0/8:80"],
     EgressPolicy("allowlist", (AllowEntry("10.1.2.3/32", 443), AllowEntry("10.0.0.0/8", 80)))),
])
def test_policy_parses(mode, allowlist, expected):
    assert EgressPolicy.parse(mode, allowlist) == expected


@pytest.mark.parametrize("mode, allowlist, says", [
    ("closed", None, "'closed'"),
    ("", None, "''"),
    ("OPEN", None, "'OPEN'"),
    ("open", ["10.1.2.3:443"], "takes no allowlist"),
    ("none", ["10.1.2.3:443"], "takes no allowlist"),
    ("allowlist", ["10.1.2.3:443", "nope"], "'nope'"),
])
def test_bad_policy_names_the_value(mode, allowlist, says):
    with pytest.raises(ValueError, match=says):
        EgressPolicy.parse(mode, allowlist)


def _by_chain(rules):
    out = {}
    for rule in rules:
        assert isinstance(rule, Rule)
        out.setdefault((rule.table, rule.chain), []).append(list(rule.args))
    return out


def test_host_guard_rules():
    comment = ["-m", "comment", "--comment", "bhub:sessions"]
    chain = guard_chain("bhub-0123456789")
    rules = _by_chain(host_guard_rules("bhub-0123456789", "172.30.0.1", 8000, tag="sessions"))
    assert rules == {
        ("nat", "PREROUTING"): [["-i", "bhub-0123456789", "-d", "172.30.0.1/32", "-p", "tcp", "--dport", "8000",
                                 *comment, "-j", "DNAT", "--to-destination", "127.0.0.1:8000"]],
        ("filter", chain): [
            ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *comment, "-j", "ACCEPT"],
            ["-d", "127.0.0.1/32", "-p", "tcp", "--dport", "8000", "-m", "conntrack", "--ctstate", "DNAT",
             *comment, "-j", "ACCEPT"],
            [*comment, "-j", "DROP"],
        ],
        ("filter", "INPUT"): [["-i", "bhub-0123456789", *comment, "-j", chain]],
        ("filter", "DOCKER-USER"): [["-i", "bhub-0123456789", "-m", "conntrack", "--ctstate", "NEW,INVALID",
                                     *comment, "-j", "DROP"]],
    }


def test_host_guard_tag_defaults_to_bridge():
    rules = host_guard_rules("bhub-x", "172.30.0.1", 8000)
    assert all("bhub:bhub-x" in rule.args for rule in rules)


@pytest.mark.parametrize("bridge, gateway, port, says", [
    ("bhub-0123456789a", "172.30.0.1", 8000, "bridge"),  # 16 characters
    ("br.0", "172.30.0.1", 8000, "bridge"),  # a dot would escape the sysctl path
    ("", "172.30.0.1", 8000, "bridge"),
    ("bhub-x", "gateway.local", 8000, "gateway"),
    ("bhub-x", "fd00::1", 8000, "gateway"),
    ("bhub-x", "172.30.0.1", 0, "public port"),
    ("bhub-x", "172.30.0.1", "8000", "public port"),
    ("bhub-x", "172.30.0.1", True, "public port"),
])
def test_host_guard_rejects_bad_input(bridge, gateway, port, says):
    with pytest.raises(ValueError, match=says):
        host_guard_rules(bridge, gateway, port)


@pytest.mark.parametrize("policy, allowlist, tail", [
    ("none", None, [["-j", "DROP"]]),
    ("open", None, [["-j", "RETURN"]]),
    ("allowlist", [], [["-j", "DROP"]]),
    ("allowlist", ["198.18.0.2:8080", "10.0.0.0/8:443"], [
        ["-d", "198.18.0.2/32", "-p", "tcp", "--dport", "8080", "-j", "RETURN"],
        ["-d", "10.0.0.0/8", "-p", "tcp", "--dport", "443", "-j", "RETURN"],
        ["-j", "DROP"],
    ]),
])
def test_egress_rules(policy, allowlist, tail):
    comment = ["-m", "comment", "--comment", "bhub:jupyter-alice"]
    chain = egress_chain("jupyter-alice")
    rules = egress_rules("172.30.0.5", policy, allowlist, tag="jupyter-alice")
    # Metadata first and unconditional; replies next; the policy; then the hook from DOCKER-USER.
    assert rules[0] == Rule("filter", chain, ("-d", f"{METADATA_ADDRESS}/32", *comment, "-j", "DROP"))
    assert rules[1] == Rule("filter", chain, ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *comment,
                                              "-j", "RETURN"))
    body = [[a for a in r.args if a not in comment] for r in rules[2:-1]]
    assert body == tail
    assert all(r.chain == chain and r.table == "filter" for r in rules[:-1])
    assert rules[-1] == Rule("filter", "DOCKER-USER", ("-s", "172.30.0.5/32", *comment, "-g", chain))


def test_egress_accepts_a_parsed_policy():
    policy = EgressPolicy.parse("allowlist", ["10.1.2.3:443"])
    assert egress_rules("172.30.0.5", policy, tag="t") == egress_rules("172.30.0.5", "allowlist",
                                                                       ["10.1.2.3:443"], tag="t")


@pytest.mark.parametrize("ip, policy, allowlist, says", [
    ("172.30.0.300", "none", None, "container IP"),
    ("fd00::5", "none", None, "container IP"),
    ("172.30.0.5", "deny", None, "'deny'"),
    ("172.30.0.5", "allowlist", ["10.1.2.3"], "'10.1.2.3'"),
])
def test_egress_rejects_bad_input(ip, policy, allowlist, says):
    with pytest.raises(ValueError, match=says):
        egress_rules(ip, policy, allowlist)


@pytest.mark.parametrize("tag, expected", [
    ("jupyter-alice", "bhub:jupyter-alice"),
    ("bhub:jupyter-alice", "bhub:jupyter-alice"),
    ("net_1.x", "bhub:net_1.x"),
])
def test_tag_comment(tag, expected):
    assert tag_comment(tag) == expected


@pytest.mark.parametrize("tag", ["", "has space", 'quote"', "x" * 196, "-leading", "bhub:"])
def test_bad_tag(tag):
    with pytest.raises(ValueError, match="tag"):
        tag_comment(tag)


@pytest.mark.parametrize("name", ["backendai-hub", "a", "x" * 200, "sessions-é"])
def test_bridge_and_chain_names_fit_kernel_limits(name):
    bridge = bridge_name(name)
    assert bridge.startswith("bhub-") and len(bridge) == 15
    assert bridge == bridge_name(name)  # deterministic: the same network always gets the same bridge
    assert len(guard_chain(bridge)) <= 28 and len(egress_chain("x" * 195)) <= 28
    assert route_localnet_sysctl(bridge) == f"net.ipv4.conf.{bridge}.route_localnet"


def test_distinct_names_get_distinct_bridges_and_chains():
    assert bridge_name("a") != bridge_name("b")
    assert egress_chain("a") != egress_chain("b") and egress_chain("a") == egress_chain("bhub:a")


def test_session_network_options():
    options = session_network_options("backendai-hub-sessions")
    assert options == {
        "driver": "bridge",
        "options": {"com.docker.network.bridge.enable_icc": "false",
                    "com.docker.network.bridge.name": bridge_name("backendai-hub-sessions")},
        "labels": {"ai.backend.hub": "1"},
    }


def test_firewall_needs_root(monkeypatch):
    monkeypatch.setattr(firewall.os, "geteuid", lambda: 1000)
    with pytest.raises(FirewallUnavailable, match="root"):
        Firewall()


def test_firewall_needs_iptables(monkeypatch):
    monkeypatch.setattr(firewall.os, "geteuid", lambda: 0)
    monkeypatch.setattr(firewall.shutil, "which", lambda name: None)
    with pytest.raises(FirewallUnavailable, match="no iptables binary"):
        Firewall()
    with pytest.raises(FirewallUnavailable, match="not found"):
        Firewall(binary="iptables-nft")


def test_host_guard_intact_reads_the_bridges_route_localnet():
    from backendai_hub.spawner.firewall import host_guard_intact

    assert host_guard_intact("bhub-nosuch00") is False  # no such bridge (the engine has not made it)
    lo = open("/proc/sys/net/ipv4/conf/lo/route_localnet").read().strip()
    assert host_guard_intact("lo") is (lo == "1")
