"""The Docker engine restarted under a running hub, with and without live-restore (real hub, proxy, service,
engine): with live-restore sessions survive and stay reachable, without it they are cleaned up with their
slots freed; the hub's view is truthful, and a respawn makes exactly one container that reaches the hub.

The engine is restarted as scripts/ensure-docker.sh starts it (tests/engine.py) and put back as it was
afterwards. Run this file holding /tmp/bhub-docker.lock: a restart stops every container of the engine.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.engine import EngineRestarts
from tests.hubproc import (admin_token, containers, hub_api, hub_fixture, live_sessions, server_path, stop_server,
                           until, wait_ready)

pytestmark = pytest.mark.docker

# the hub offers 2 cpus: had a session's slots leaked, a respawn of these would queue, never get ready
TWO = {"resources": {"cpu": 2, "mem": "512m"}}

hub = hub_fixture("engine-restart", BACKENDAI_HUB_CULL_INTERVAL="1", BACKENDAI_HUB_RECONCILE_GRACE="3",
                  BACKENDAI_HUB_HOST_CAPACITY="cpu=2,mem=4g")


@pytest.fixture(scope="module")
def engine(tmp_path_factory, hub):
    restarts = EngineRestarts(tmp_path_factory.mktemp("engine"))
    try:
        yield restarts
    finally:
        restarts.restore()


def answers(hub, token: str, name: str) -> bool:
    """Whether demo's server ``name`` answers through the hub's proxy."""
    try:
        r = requests.get(f"{hub.url}/user/demo/{name}/api/status", headers={"Authorization": f"token {token}"},
                         timeout=10, allow_redirects=False)
    except requests.RequestException:
        return False
    return r.status_code == 200


def server(hub, token: str, name: str) -> dict | None:
    return hub_api(hub, token, "GET", "users/demo").json()["servers"].get(name)


def spawn_ready(hub, token: str, name: str) -> None:
    r = hub_api(hub, token, "POST", server_path("demo", name), json=TWO)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, token, name=name)
    assert answers(hub, token, name)  # it reached the hub (the server checks in at start) and serves


def one_running_container(hub, name: str):
    found = containers(hub, name)
    assert [c.status for c in found] == ["running"], (
        [(c.name, c.status) for c in found], hub.log.read_text()[-6000:])  # the hub's side, for a failure
    return found[0]


def test_without_live_restore_the_session_is_cleaned_up_and_respawns_once(hub, engine):
    admin = admin_token(hub)
    spawn_ready(hub, admin, "r1")
    before = one_running_container(hub, "r1").id
    engine.restart(live_restore=False)  # the engine stops every container on its way down
    # the hub's view turns truthful: the server is stopped, its session ends, its container is removed
    until("the hub stops the dead server", lambda: server(hub, admin, "r1") is None, 120)
    until("its session ends", lambda: ("r1", "running") not in live_sessions(hub), 60)
    until("its container is removed", lambda: containers(hub, "r1") == [], 60)
    # its two cpus are free again: the respawn is admitted, gets one new container,
    # and its server reaches the hub through the guard again
    spawn_ready(hub, admin, "r1")
    assert one_running_container(hub, "r1").id != before
    stop_server(hub, admin, name="r1")
    assert containers(hub, "r1") == [] and live_sessions(hub) == []


def test_with_live_restore_the_session_survives_and_stays_reachable(hub, engine):
    # the spawner's containers are not auto-remove: Docker 20.10 removes a running auto-remove container
    # when it comes back with live-restore (moby/moby#46308), and the session would be lost
    admin = admin_token(hub)
    engine.restart(live_restore=True)  # live-restore applies when the engine goes down: on before the session
    spawn_ready(hub, admin, "r2")
    before = one_running_container(hub, "r2").id
    engine.restart(live_restore=True)
    assert one_running_container(hub, "r2").id == before  # the same container, still running
    # several reconciler passes (every 1 s, 3 s grace) later, the hub and the sessions table still have it,
    # and it answers through the proxy (its route and the host guard outlived the restart)
    for _ in range(3):
        until("the server answers through the proxy", lambda: answers(hub, admin, "r2"), 30)
        spec = server(hub, admin, "r2")
        assert spec and spec["ready"], spec
        assert ("r2", "running") in live_sessions(hub)
        time.sleep(2)
    assert [c.id for c in containers(hub, "r2")] == [before]
    stop_server(hub, admin, name="r2")
    until("no container left", lambda: containers(hub, "r2") == [], 60)
    assert live_sessions(hub) == []
    # respawn after the restart: one container, admitted in the slots the first one freed
    spawn_ready(hub, admin, "r2")
    assert one_running_container(hub, "r2").id != before
    stop_server(hub, admin, name="r2")
    assert containers(hub, "r2") == [] and live_sessions(hub) == []
