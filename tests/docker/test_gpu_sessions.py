"""GPU sessions through the real hub on the real engine, with two mock GPUs (BACKENDAI_HUB_MOCK_GPUS=2)."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from tests.hubproc import hub_api, hub_fixture, server_path, session_container, stop_server
from tests.hubproc import wait_ready as hub_wait_ready

pytestmark = pytest.mark.docker

GPU = {"resources": {"cpu": 1, "mem": "512m", "cuda.device": 1}}


# the mock plugin's device list defaults to $BACKENDAI_HUB_MOCK_GPUS alike devices; CPUs and memory
# are declared ample (the demo config honours BACKENDAI_HUB_HOST_CAPACITY) so only GPUs run out
hub = hub_fixture("gpu", BACKENDAI_HUB_MOCK_GPUS="2", BACKENDAI_HUB_HOST_CAPACITY="cpu=8,mem=16g")
api = hub_api


def spawn(hub, token, user, options=GPU):
    r = api(hub, token, "POST", server_path(user), json=options)
    assert r.status_code in (201, 202), r.text
    return r


def server(hub, token, user, name=""):
    return api(hub, token, "GET", f"users/{user}").json()["servers"].get(name)


def wait_ready(hub, token, user, name="", timeout=90):
    return hub_wait_ready(hub, token, user, name, timeout, describe=lambda: rows(hub))


def stop(hub, token, user):
    stop_server(hub, token, user)


def rows(hub) -> dict[str, tuple[str, dict]]:
    """user (or user/server) -> (status, allocation) of the latest session row, from the hub's database."""
    con = sqlite3.connect(hub.state / "backendai_hub.sqlite")
    try:
        out = {}
        for user, name, status, allocation in con.execute(
                "select u.username, s.server_name, s.status, s.allocation from sessions s "
                "join users u on u.id = s.user_id order by s.id"):
            out[f"{user}/{name}" if name else user] = (status, json.loads(allocation or "{}"))
        return out
    finally:
        con.close()


def devices_of(hub, user) -> dict:
    return rows(hub)[user][1].get("devices", {})


def env(hub, user, name="") -> dict[str, str]:
    out = session_container(hub, user, name).exec_run(["env"], user="1000").output.decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_sessions_without_gpus_are_told_so_whatever_the_image_says(hub, admin):
    client = docker.from_env()
    dockerfile = b"FROM backendai-hub/notebook:latest\nENV BACKENDAI_MOCK_DEVICES=0,1 CUDA_VISIBLE_DEVICES=0,1\n"
    client.images.build(fileobj=io.BytesIO(dockerfile), tag="backendai-hub/gpu-env:latest", pull=False, rm=True)
    try:
        r = api(hub, admin, "POST", "users/admin/servers/plain",
                json={"image": "backendai-hub/gpu-env", "resources": {"cpu": 1, "mem": "512m"}})
        assert r.status_code in (201, 202), r.text
        wait_ready(hub, admin, "admin", "plain")
        e = env(hub, "admin", "plain")
        assert (e["BACKENDAI_MOCK_DEVICES"], e["CUDA_VISIBLE_DEVICES"]) == ("", "")
        assert "devices" not in rows(hub)["admin/plain"][1]
        # a request beyond the user's policy is refused with the policy's reason, not queued
        r = api(hub, admin, "POST", "users/manager/server", json={"resources": {"cuda.device": 2}})
        assert r.status_code == 403 and "allows cuda.device=1" in r.json()["message"], r.text
    finally:
        client.images.remove("backendai-hub/gpu-env:latest", force=True)  # the running session keeps its layers


def test_two_gpus_three_users_then_restart_and_a_killed_container(hub, admin):
    # two users get one mock GPU each; each session sees only its own device
    # (the hub answers a POST only after up to 10 s of the start: post side by side)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda user: spawn(hub, admin, user), ["demo", "manager"]))
    wait_ready(hub, admin, "demo")
    wait_ready(hub, admin, "manager")
    demo_dev, manager_dev = devices_of(hub, "demo"), devices_of(hub, "manager")
    assert sorted([*demo_dev["cuda.device"], *manager_dev["cuda.device"]]) == ["0", "1"]
    for user, held in (("demo", demo_dev), ("manager", manager_dev)):
        e = env(hub, user)
        assert e["BACKENDAI_MOCK_DEVICES"] == next(iter(held["cuda.device"])), (user, e)
        assert e["CUDA_VISIBLE_DEVICES"] == "0"
        assert "cuda.device=1" in e["BACKENDAI_RESOURCES"]

    # the third waits in the queue (the spawner queues what fits the policy but not the host) ...
    pool = ThreadPoolExecutor(1)
    posted = pool.submit(spawn, hub, admin, "admin")
    deadline = time.monotonic() + 20
    while rows(hub).get("admin", ("",))[0] != "queued" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rows(hub)["admin"] == ("queued", {})
    assert not server(hub, admin, "admin")["ready"]
    # ... and gets the device demo frees
    stop(hub, admin, "demo")
    posted.result()
    pool.shutdown()
    wait_ready(hub, admin, "admin")
    assert devices_of(hub, "admin") == demo_dev
    assert env(hub, "admin")["BACKENDAI_MOCK_DEVICES"] == next(iter(demo_dev["cuda.device"]))
    assert rows(hub)["demo"][0] == "terminated"

    # a hub restart keeps what running sessions hold; a container killed meanwhile frees its device
    hub.stop(keep_sessions=True)
    session_container(hub, "admin").kill()
    hub.start()
    after = rows(hub)
    assert after["manager"] == ("running", rows(hub)["manager"][1]) and devices_of(hub, "manager") == manager_dev
    assert after["admin"][0] == "terminated"
    spawn(hub, admin, "demo")
    wait_ready(hub, admin, "demo")
    assert devices_of(hub, "demo") == demo_dev  # the killed container's device, free again
    assert env(hub, "manager")["BACKENDAI_MOCK_DEVICES"] == next(iter(manager_dev["cuda.device"]))
    # (the module's hub.stop() removes the containers: stopping each through the API costs ~10 s)
