"""Session network isolation on a real engine: icc off, host guard, DNAT to the public port, egress.

Traffic goes only to 127.0.0.1, to containers on a network this module creates, and to a test host in
a network namespace it creates (198.18.0.0/15, the benchmarking range). The metadata address is never
contacted: only the presence of its DROP rule is checked.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from backendai_hub.egress import METADATA_ADDRESS
from backendai_hub.spawner.firewall import Firewall, FirewallError, egress_rules, host_guard_rules
from backendai_hub.spawner.network import ensure_session_network, remove_session_network
from tests.conftest import unavailable

pytestmark = pytest.mark.docker

IMAGE = "backendai-hub/notebook:latest"
SESSION_PORT = 8888
TIMEOUT = 1.5  # a dropped SYN costs this much per probe; probes of one call run in parallel

# Runs inside a session: connect to each host:port (in parallel), print {"host:port": "open"|error}.
PROBE = r"""
import json, socket, sys, threading
res = {}
def probe(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=float(sys.argv[1])).close()
        res[target] = "open"
    except OSError as e:
        res[target] = type(e).__name__
ts = [threading.Thread(target=probe, args=(t,)) for t in sys.argv[2:]]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(res))
"""

FETCH = r"""
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=20).stdout


def probe(container, *targets: str) -> dict:
    """Which of host:port targets a session can open a TCP connection to."""
    code, out = container.exec_run(["python3", "-c", PROBE, str(TIMEOUT), *targets], user="1000")
    assert code == 0, out
    return {t: r == "open" for t, r in json.loads(out.decode().strip().splitlines()[-1]).items()}


def host_can_connect(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=TIMEOUT).close()
        return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TokenServer(http.server.ThreadingHTTPServer):
    """A host-side HTTP listener that answers every GET with a token."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], token: str):
        self.token = token

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(h):  # noqa: N802 - http.server's naming
                body = token.encode()
                h.send_response(200)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

            def log_message(h, *args):
                pass

        super().__init__(address, Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@contextlib.contextmanager
def token_server(host: str, port: int = 0):
    server = TokenServer((host, port), secrets.token_hex(8))
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def docker_client(docker_available):
    import docker

    client = docker.from_env(timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def firewall(docker_available):
    try:
        return Firewall()
    except FirewallError as e:
        unavailable("iptables", str(e))


@pytest.fixture(scope="module")
def suffix():
    return secrets.token_hex(4)


@pytest.fixture(scope="module")
def guarded(docker_client, firewall, suffix):
    """A fresh session network with the host guard installed for a test public port."""
    name = f"bhub-test-{suffix}"
    net = ensure_session_network(docker_client, name)
    public_port = free_port()
    try:
        firewall.install_host_guard(net.bridge, net.gateway, public_port, tag=net.name)
        yield net, public_port
    finally:
        # A safety net for tests that failed before their own clean-up.
        for tag in ("a", "b", "moved"):
            with contextlib.suppress(Exception):
                firewall.remove_session(f"{name}-{tag}")
        with contextlib.suppress(Exception):
            firewall.remove_host_guard(net.bridge, tag=net.name)
        remove_session_network(docker_client, name)
        assert not [n for n in docker_client.networks.list(names=[name]) if n.name == name]


@pytest.fixture(scope="module")
def sessions(docker_client, guarded, suffix):
    """Two running sessions, each serving HTTP on SESSION_PORT: {"a": (container, ip), "b": ...}."""
    net, _ = guarded
    started = {}
    try:
        for key in ("a", "b"):
            started[key] = docker_client.containers.run(
                IMAGE, ["python3", "-m", "http.server", str(SESSION_PORT)], user="1000", network=net.name,
                name=f"bhub-test-{suffix}-{key}", detach=True, labels={"ai.backend.hub.test": "1"})
        out = {}
        for key, container in started.items():
            deadline = time.monotonic() + 20
            while True:
                container.reload()
                ip = container.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
                if ip and host_can_connect(ip, SESSION_PORT):
                    break
                assert time.monotonic() < deadline, container.logs()[-2000:]
                time.sleep(0.2)
            out[key] = (container, ip)
        yield out
    finally:
        for container in started.values():
            with contextlib.suppress(Exception):
                container.remove(force=True)


@pytest.fixture(scope="module")
def test_host(guarded, suffix):
    """A network-namespace host at 198.18.x.2 listening on 8080 and 8081, reached through a veth."""
    net, _ = guarded
    third, fourth = secrets.randbelow(256), secrets.randbelow(64) * 4
    near, far = f"198.18.{third}.{fourth + 1}", f"198.18.{third}.{fourth + 2}"
    ns, veth, peer = f"bhubt{suffix}", f"bhv{suffix}h", f"bhv{suffix}n"
    server = None
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", peer, "netns", ns)
        sh("ip", "addr", "add", f"{near}/30", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", ns, "addr", "add", f"{far}/30", "dev", peer)
        sh("ip", "-n", ns, "link", "set", peer, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Docker masquerades sessions to the veth address; this route only matters if it did not.
        sh("ip", "-n", ns, "route", "add", net.subnet, "via", near)
        # Never let a probe leave the machine: the test host must be reached through our veth only.
        assert f"dev {veth}" in sh("ip", "route", "get", far), sh("ip", "route", "get", far)
        if forwarding != "1":
            open("/proc/sys/net/ipv4/ip_forward", "w").write("1")
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c",
             "import socketserver, threading\n"
             "class H(socketserver.BaseRequestHandler):\n"
             "    def handle(self): self.request.sendall(b'hi')\n"
             "for p in (8080, 8081):\n"
             "    s = socketserver.ThreadingTCPServer(('0.0.0.0', p), H)\n"
             "    threading.Thread(target=s.serve_forever).start()\n"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while "8081" not in sh("ip", "netns", "exec", ns, "ss", "-ltnH"):
            assert time.monotonic() < deadline and server.poll() is None, "test host listener did not start"
            time.sleep(0.1)
        yield far
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", veth], capture_output=True, timeout=20)  # gone with the ns, normally
        if forwarding != "1":
            open("/proc/sys/net/ipv4/ip_forward", "w").write(forwarding)


def tagged_lines(firewall, *tags: str) -> list[str]:
    comments = {f'"bhub:{t}"' for t in tags} | {f"bhub:{t}" for t in tags}
    return [line for table in ("filter", "nat") for line in firewall.list_rules(table)
            if comments & set(line.split())]


def test_network_is_ours_and_reused(docker_client, guarded):
    net, _ = guarded
    attrs = docker_client.networks.get(net.id).attrs
    assert attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert attrs["Options"]["com.docker.network.bridge.name"] == net.bridge and len(net.bridge) <= 15
    assert attrs["Labels"]["ai.backend.hub"] == "1"
    assert net.bridge in sh("ip", "-o", "link", "show", net.bridge)
    assert ensure_session_network(docker_client, net.name) == net
    assert open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read().strip() == "1"


def test_sessions_cannot_reach_each_other(firewall, sessions, suffix):
    (a, a_ip), (b, b_ip) = sessions["a"], sessions["b"]
    tags = (f"bhub-test-{suffix}-a", f"bhub-test-{suffix}-b")
    try:
        # Open egress, so that only the network's icc=false stands between the two.
        firewall.allow_session(a_ip, "open", tag=tags[0])
        firewall.allow_session(b_ip, "open", tag=tags[1])
        assert probe(a, f"{b_ip}:{SESSION_PORT}") == {f"{b_ip}:{SESSION_PORT}": False}
        assert probe(b, f"{a_ip}:{SESSION_PORT}") == {f"{a_ip}:{SESSION_PORT}": False}
    finally:
        for tag in tags:
            firewall.remove_session(tag)


def test_host_reaches_sessions_like_the_proxy(sessions):
    for _, ip in sessions.values():
        with urllib.request.urlopen(f"http://{ip}:{SESSION_PORT}/", timeout=TIMEOUT) as response:
            assert response.status == 200


def test_session_reaches_the_hub_api_through_the_public_port(guarded, sessions):
    net, public_port = guarded
    a, _ = sessions["a"]
    with token_server("127.0.0.1", public_port) as server:
        code, out = a.exec_run(["python3", "-c", FETCH, f"http://{net.gateway}:{public_port}/hub/api", "5"],
                               user="1000")
    assert code == 0 and out.decode().strip() == server.token, out


def test_other_host_ports_are_dropped(guarded, sessions):
    net, _ = guarded
    a, _ = sessions["a"]
    # Stand-ins for the hub's internal API and the proxy's API on the gateway, and a loopback-only
    # service (a database) that only the DNAT could have exposed.
    with token_server(net.gateway) as hub_api, token_server(net.gateway) as proxy_api, \
            token_server("127.0.0.1") as database:
        ports = [hub_api.server_address[1], proxy_api.server_address[1], database.server_address[1]]
        assert host_can_connect(net.gateway, ports[0]) and host_can_connect(net.gateway, ports[1])
        seen = probe(a, *(f"{net.gateway}:{p}" for p in ports))
    assert seen == {f"{net.gateway}:{p}": False for p in ports}


def test_host_guard_is_idempotent(firewall, guarded):
    net, public_port = guarded
    before = tagged_lines(firewall, net.name)
    firewall.install_host_guard(net.bridge, net.gateway, public_port, tag=net.name)
    assert tagged_lines(firewall, net.name) == before
    assert len(before) == len(host_guard_rules(net.bridge, net.gateway, public_port, tag=net.name))
    assert all(firewall.exists(rule) for rule in host_guard_rules(net.bridge, net.gateway, public_port,
                                                                  tag=net.name))


def test_egress_policies(firewall, sessions, test_host, suffix):
    a, a_ip = sessions["a"]
    tag = f"bhub-test-{suffix}-a"
    ports = (f"{test_host}:8080", f"{test_host}:8081")
    try:
        # No policy installed yet: the network's fail-closed rule holds.
        assert probe(a, *ports) == {ports[0]: False, ports[1]: False}

        firewall.allow_session(a_ip, "open", tag=tag)
        assert probe(a, *ports) == {ports[0]: True, ports[1]: True}

        firewall.allow_session(a_ip, "allowlist", [f"{test_host}:8080"], tag=tag)
        assert probe(a, *ports) == {ports[0]: True, ports[1]: False}

        firewall.allow_session(a_ip, "none", tag=tag)
        assert probe(a, *ports) == {ports[0]: False, ports[1]: False}
        # The proxy's connections into the session, and their replies, are untouched by `none`.
        assert host_can_connect(a_ip, SESSION_PORT)

        for policy, allowlist in (("none", None), ("allowlist", [f"{test_host}:8080"]), ("open", None)):
            firewall.allow_session(a_ip, policy, allowlist, tag=tag)
            rules = egress_rules(a_ip, policy, allowlist, tag=tag)
            metadata = next(r for r in rules if f"{METADATA_ADDRESS}/32" in r.args)
            assert "DROP" in metadata.args and firewall.exists(metadata)  # checked with -C, never contacted
            assert all(firewall.exists(r) for r in rules)
        # Open egress still leaves icc off: Docker's own rules are not bypassed.
        b_ip = sessions["b"][1]
        assert probe(a, f"{b_ip}:{SESSION_PORT}") == {f"{b_ip}:{SESSION_PORT}": False}
    finally:
        firewall.remove_session(tag)
    assert tagged_lines(firewall, tag) == []
    assert probe(a, *ports) == {ports[0]: False, ports[1]: False}


def test_session_rules_are_idempotent_and_follow_the_ip(firewall, suffix):
    tag = f"bhub-test-{suffix}-moved"
    try:
        # No container holds these addresses: the rules are only installed, never exercised.
        firewall.allow_session("172.31.255.250", "allowlist", ["198.18.0.2:8080"], tag=tag)
        first = tagged_lines(firewall, tag)
        firewall.allow_session("172.31.255.250", "allowlist", ["198.18.0.2:8080"], tag=tag)
        assert tagged_lines(firewall, tag) == first
        firewall.allow_session("172.31.255.251", "allowlist", ["198.18.0.2:8080"], tag=tag)
        hooks = [line for line in tagged_lines(firewall, tag) if line.startswith("-A DOCKER-USER")]
        assert len(hooks) == 1 and "172.31.255.251/32" in hooks[0]
    finally:
        firewall.remove_session(tag)
    assert tagged_lines(firewall, tag) == []
    firewall.remove_session(tag)  # removing again is harmless


def test_teardown_removes_every_rule(firewall, guarded, sessions, suffix):
    net, _ = guarded
    a_tag, b_tag = f"bhub-test-{suffix}-a", f"bhub-test-{suffix}-b"
    firewall.allow_session(sessions["a"][1], "open", tag=a_tag)
    firewall.allow_session(sessions["b"][1], "none", tag=b_tag)
    assert tagged_lines(firewall, a_tag) and tagged_lines(firewall, b_tag) and tagged_lines(firewall, net.name)
    firewall.remove_session(a_tag)
    firewall.remove_session(b_tag)
    firewall.remove_host_guard(net.bridge, tag=net.name)
    assert tagged_lines(firewall, net.name, a_tag, b_tag) == []
    chains = "\n".join(firewall.list_rules("filter"))
    for rule in host_guard_rules(net.bridge, net.gateway, 1, tag=net.name) + egress_rules(
            "172.31.0.1", "none", tag=a_tag) + egress_rules("172.31.0.1", "none", tag=b_tag):
        if rule.chain.startswith("BHUB-"):
            assert f"-N {rule.chain}\n" not in chains + "\n"
    assert open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read().strip() == "0"
