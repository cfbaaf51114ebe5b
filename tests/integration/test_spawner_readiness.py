"""start() returns once the session's server listens (in process, real sockets, our real database; no Docker)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest
from tornado import httpserver, netutil, web

from backendai_hub.spawner.readiness import ServerExited, ServerNotListening, port_accepts, wait_listening
from tests.integration import test_spawner_inprocess as base
from tests.integration.test_spawner_inprocess import ONE_CPU, TWO_CPUS, sessions
from tests.mocking import FakeContainer, MockSpawner

db, make_hub = base.db, base.make_hub  # the same tenancy and in-process hub as test_spawner_inprocess


class Answer(web.RequestHandler):
    def get(self, *args):
        self.write({"container": "late"})


LATE = 0.6  # seconds after the container starts that LateSpawner's server listens


class LateSpawner(MockSpawner):
    """The container starts at once; its server listens ``LATE`` s later, as a real one after its imports."""

    listened_at: float | None = None
    returned_at: float | None = None

    async def _serve(self, container: FakeContainer) -> int:
        sockets = netutil.bind_sockets(0, "127.0.0.1")  # bound, but not listening (connections are refused)
        port = sockets[0].getsockname()[1]
        sockets[0].close()

        def listen():
            container.server = httpserver.HTTPServer(web.Application([(r"/.*", Answer)]))
            container.server.listen(port, "127.0.0.1")
            self.listened_at = time.monotonic()

        asyncio.get_running_loop().call_later(LATE, listen)
        return port

    async def start(self):
        try:
            return await super().start()
        finally:
            self.returned_at = time.monotonic()


class DyingSpawner(MockSpawner):
    """The container exits (status 3) before its server ever listens."""

    async def _serve(self, container: FakeContainer) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        asyncio.get_running_loop().call_later(0.2, lambda: setattr(container, "running", False))
        return port

    async def container_status(self):
        return None if self.container is not None and self.container.running else 3


async def test_start_returns_only_once_the_server_listens(db, make_hub):
    hub = make_hub()
    spawner, spawn = hub.spawn("ann", options=ONE_CPU, spawner_class=LateSpawner)
    await asyncio.wait_for(spawn, 20)
    assert spawner.listened_at is not None and spawner.returned_at is not None
    # start() waited for the server, and no longer than a few of its 50 ms polls after it listened
    assert spawner.listened_at <= spawner.returned_at < spawner.listened_at + 0.5
    assert sessions(db) == [("ann", "running", "")]


async def test_with_the_wait_off_start_returns_before_the_server_listens(db, make_hub):
    hub = make_hub(ready_poll_interval=0)
    spawner, spawn = hub.spawn("ann", options=ONE_CPU, spawner_class=LateSpawner)
    await asyncio.wait_for(spawn, 20)  # the hub's own check waits for it instead
    assert spawner.returned_at < spawner.listened_at


async def test_a_server_that_exits_before_listening_fails_the_spawn_at_once_and_frees_its_slots(db, make_hub):
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"}, http_timeout=30)
    t = time.monotonic()
    _, spawn = hub.spawn("ann", options=TWO_CPUS, spawner_class=DyingSpawner)
    with pytest.raises(web.HTTPError, match=r"the session's server exited \(3\) before it listened"):
        await asyncio.wait_for(spawn, 20)
    assert time.monotonic() - t < 10  # not after http_timeout (30 s)
    assert [(u, status) for u, status, _ in sessions(db)] == [("ann", "terminated")]
    _, spawn = hub.spawn("ben", options=TWO_CPUS)  # the group's two cpus are free again
    await asyncio.wait_for(spawn, 20)


async def test_wait_listening_polls_a_real_port_until_it_listens():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    assert not await port_accepts("127.0.0.1", port)

    async def running():
        return None

    asyncio.get_running_loop().call_later(0.3, s.listen)
    took = await wait_listening("127.0.0.1", port, timeout=5, interval=0.05, exited=running)
    assert 0.25 < took < 1.0
    assert await port_accepts("127.0.0.1", port)
    s.close()
    with pytest.raises(ServerNotListening, match=f"did not listen on port {port} within 0.3 s") as info:
        await wait_listening("127.0.0.1", port, timeout=0.3, interval=0.05, exited=running)
    assert not isinstance(info.value, ServerExited)


class CountingSpawner(MockSpawner):
    """Counts how often the session network and its host guard are set up."""

    setups: list[str] = []

    def setup_network(self, port: int):
        CountingSpawner.setups.append(self.network_name)
        time.sleep(0.1)  # iptables under the xtables lock: long enough for every spawn to ask at once
        return super().setup_network(port)


async def test_a_burst_of_spawns_on_a_fresh_hub_sets_the_network_and_its_guard_up_once(db, make_hub):
    net = f"burst-{uuid.uuid4().hex[:8]}"  # a network this hub process has not set up yet
    hub = make_hub(host_capacity={"cpu": 8, "mem": "16g"}, network_name=net)
    users = ("ann", "ben", "cat", "a", "a-b")
    spawns = [hub.spawn(u, options={"resources": {"cpu": 0.25, "mem": "256m"}}, spawner_class=CountingSpawner)
              for u in users]
    await asyncio.wait_for(asyncio.gather(*(f for _, f in spawns)), 30)
    assert CountingSpawner.setups.count(net) == 1
    assert sorted(u for u, status, _ in sessions(db) if status == "running") == sorted(users)


QUARTER = {"resources": {"cpu": 0.25, "mem": "256m"}}


class RemadeBridgeSpawner(CountingSpawner):
    """As after an engine restart that made the bridge anew: the guard's per-bridge setting is gone once."""

    remade: list[bool] = [True]

    def network_still_set_up(self, net) -> bool:
        return not (RemadeBridgeSpawner.remade and RemadeBridgeSpawner.remade.pop())


async def test_a_bridge_the_engine_made_anew_is_set_up_again_at_the_next_spawn(db, make_hub):
    net = f"remade-{uuid.uuid4().hex[:8]}"
    hub = make_hub(host_capacity={"cpu": 8, "mem": "16g"}, network_name=net)
    _, spawn = hub.spawn("ann", options=QUARTER, spawner_class=CountingSpawner)
    await asyncio.wait_for(spawn, 20)
    assert CountingSpawner.setups.count(net) == 1
    RemadeBridgeSpawner.remade[:] = [True]
    _, spawn = hub.spawn("ben", options=QUARTER, spawner_class=RemadeBridgeSpawner)
    await asyncio.wait_for(spawn, 20)
    assert CountingSpawner.setups.count(net) == 2  # guarded again
    _, spawn = hub.spawn("cat", options=QUARTER, spawner_class=RemadeBridgeSpawner)
    await asyncio.wait_for(spawn, 20)
    assert CountingSpawner.setups.count(net) == 2  # intact now: not again
