"""Device allocation inside admission on real SQLite and PostgreSQL; the agents inventory over REST."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from traitlets.config import Config

from backendai_hub import admission as S
from backendai_hub.errors import AdmissionDenied
from backendai_hub.accelerators import Accelerators
from backendai_hub.accelerators.allocation import DeviceAllocator
from backendai_hub.accelerators.inventory import agent_id
from backendai_hub.accelerators.mock import MockPlugin, mock_devices
from backendai_hub.models import KernelSession, SessionStatus
from backendai_hub.policy import parse_slots
from tests.conftest import database_with
from tests.integration.service_harness import service_fixtures

TENANCY = {
    "resource_policies": {"keypair": [{"name": "many", "max_concurrent_sessions": 50},
                                      {"name": "one-gpu", "total_resource_slots": {"cuda.device": 1}}]},
    "domains": [{"name": "acme"}],
    "groups": [{"name": "ml", "domain": "acme", "total_resource_slots": {"cuda.device": 3}}],
    "users": [{"username": u, "email": f"{u}@example.com", "domain": "acme", "groups": ["ml"]}
              for u in ("ann", "ben", "cat", "dan")],
    "keypairs": [{"user": "ann", "resource_policy": "many"}, {"user": "ben", "resource_policy": "many"},
                 {"user": "cat", "resource_policy": "many"}, {"user": "dan", "resource_policy": "one-gpu"}],
}


def registry(n=2, **mock):
    class Registry(Accelerators):
        def entry_points(self):
            return [("mock", lambda: MockPlugin)]

    cfg = Config()
    cfg.MockPlugin.devices = mock.pop("devices", None) or mock_devices(n)
    for k, v in mock.items():
        cfg.MockPlugin[k] = v
    return Registry(config=cfg)


db = database_with(TENANCY)


def start(db, user, server="", slots="cuda.device=1", allocator=None, **kw):
    """Admit and return (id, status, allocation)."""
    with db.session() as s:
        row = S.admit(s, S.resolve(s, user), server_name=server, image="img", app="jupyterlab",
                      request=parse_slots(slots, allow_zero=False), allocator=allocator, **kw)
        return row.id, row.status, dict(row.allocation or {})


def held(db) -> list[dict]:
    with db.session() as s:
        return [dict(r.allocation or {}).get("devices", {}) for r in S.live_sessions(s)
                if r.status in (SessionStatus.starting, SessionStatus.running)]


def test_two_gpus_three_users_each_gets_its_own_then_a_freed_one(db):
    alloc = registry(2).allocator()
    a = start(db, "ann", allocator=alloc)
    b = start(db, "ben", allocator=alloc)
    assert a[2]["devices"] == {"cuda.device": {"0": "1"}} and b[2]["devices"] == {"cuda.device": {"1": "1"}}
    with pytest.raises(AdmissionDenied, match="the host has no free device for cuda.device=1 right now") as e:
        start(db, "cat", allocator=alloc)
    assert e.value.level == "host"
    # sessions without devices are not held back by busy GPUs
    assert start(db, "cat", "cpu", slots="cpu=1", allocator=alloc)[2] == {}
    with db.session() as s:
        assert S.release(s, a[0], "stopped")
    c = start(db, "cat", allocator=alloc)
    assert c[2]["devices"] == {"cuda.device": {"0": "1"}}  # the released device, nothing more


def test_policies_still_count_gpu_slots(db):
    alloc = registry(4).allocator()
    start(db, "dan", "a", allocator=alloc)
    with pytest.raises(AdmissionDenied, match="keypair .* allows cuda.device=1, 1 in use, 1 requested"):
        start(db, "dan", "b", allocator=alloc)
    start(db, "ann", "a", slots="cuda.device=2", allocator=alloc)
    with pytest.raises(AdmissionDenied, match="group 'ml' allows cuda.device=3, 3 in use, 1 requested"):
        start(db, "ben", "a", allocator=alloc)


@pytest.mark.parametrize("capacity", [None, {"cuda.device": Decimal(2)}], ids=["allocator-only", "with-capacity"])
def test_twenty_simultaneous_requests_never_over_allocate(db, capacity):
    alloc = registry(2).allocator()
    users = ["ann", "ben", "cat"]

    def attempt(i):
        try:
            return start(db, users[i % 3], f"race{i}", allocator=alloc, capacity=capacity)[2]["devices"]
        except AdmissionDenied as e:
            return str(e)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    granted = [r for r in results if isinstance(r, dict)]
    assert len(granted) == 2, results
    assert sorted(d for g in granted for d in g["cuda.device"]) == ["0", "1"]
    assert all("the host has no free" in r for r in results if isinstance(r, str))
    assert sorted(d for h in held(db) for d in h.get("cuda.device", {})) == ["0", "1"]


def test_twenty_simultaneous_fractional_requests_stay_within_each_device(db):
    alloc = registry(2, mode="fractional").allocator()
    users = ["ann", "ben", "cat"]

    def attempt(i):
        try:
            return start(db, users[i % 3], f"frac{i}", slots="cuda.shares=0.3", allocator=alloc)[2]["devices"]
        except AdmissionDenied:
            return None

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert sum(r is not None for r in results) == 6  # 2.0 shares / 0.3: six fit (the last ones spread)
    per_device: dict[str, Decimal] = {}
    for h in held(db):
        for dev, amount in h["cuda.shares"].items():
            per_device[dev] = per_device.get(dev, Decimal(0)) + Decimal(amount)
    assert all(v <= 1 for v in per_device.values()) and sum(per_device.values()) == Decimal("1.8"), per_device


def test_no_free_device_queues_first_come_first_served(db):
    alloc = registry(2).allocator()
    capacity = {"cuda.device": Decimal(2)}
    a = start(db, "ann", allocator=alloc, capacity=capacity, queue=True)
    start(db, "ben", allocator=alloc, capacity=capacity, queue=True)
    q = start(db, "cat", allocator=alloc, capacity=capacity, queue=True)
    assert q[1] == SessionStatus.queued and q[2] == {}
    with db.session() as s:
        S.release(s, a[0], "stopped")
    with db.session() as s:
        row = S.admit(s, S.resolve(s, "cat"), server_name="", image="img", app="jupyterlab",
                      request=parse_slots("cuda.device=1"), capacity=capacity, queue=True, queued_id=q[0],
                      allocator=alloc)
        assert row.status == SessionStatus.starting and row.allocation["devices"] == {"cuda.device": {"0": "1"}}


def test_a_restarted_server_and_terminated_rows_hold_nothing(db):
    alloc = registry(1).allocator()
    first = start(db, "ann", "a", allocator=alloc)
    again = start(db, "ann", "a", allocator=alloc)  # same server again: the stale row is replaced
    assert again[2]["devices"] == {"cuda.device": {"0": "1"}}
    with db.session() as s:
        assert s.get(KernelSession, first[0]).status == SessionStatus.terminated
        S.release(s, again[0], "container exited (137)")  # what the reconciler does for a killed container
    assert start(db, "ben", allocator=alloc)[2]["devices"] == {"cuda.device": {"0": "1"}}


def test_cpuset_follows_the_devices_numa_node(db):
    devices = [{"numa_node": 0}, {"numa_node": 1}]
    reg = registry(devices=devices)
    alloc = DeviceAllocator(reg.devices(), numa_cpus={0: [0, 1], 1: [2, 3]})
    start(db, "ann", slots="cuda.device=1,cpu=1", allocator=alloc, host_cpus=4)
    b = start(db, "ben", slots="cuda.device=1,cpu=2", allocator=alloc, host_cpus=4)
    assert b[2] == {"devices": {"cuda.device": {"1": "1"}}, "numa_node": 1, "cpuset": [2, 3]}
    c = start(db, "cat", slots="cpu=1", allocator=alloc, host_cpus=4)  # no devices: least-shared CPU as before
    assert c[2] == {"cpuset": [1]}


# -- the agents resource ---------------------------------------------------------------------------


def two_mock_gpus(svc):
    svc.app.settings["accelerators"] = registry(2)


template, svc = service_fixtures(setup=two_mock_gpus)


async def test_superadmins_see_the_inventory_and_who_holds_each_device(svc):
    with svc.db.session() as s:
        charge = S.resolve(s, "alice")
        S.admit(s, charge, server_name="gpu", image="img", app="jupyterlab", request=parse_slots("cuda.device=1"),
                allocator=svc.app.settings["accelerators"].allocator())
    code, page = await svc.call("root", "GET", "agents")
    assert code == 200 and page["total"] == 1
    (agent,) = page["items"]
    assert agent["id"] == agent_id()
    assert {"architecture", "cpu", "memory", "numa_nodes", "disks", "accelerators", "capacity"} <= set(agent)
    assert agent["capacity"]["cuda.device"] == "2" and agent["occupied"] == {"cuda.device": "1"}
    devices = {d["id"]: d for d in agent["accelerators"][0]["devices"]}
    assert [h["user"] for h in devices["0"]["held_by"]] == ["alice"] and devices["1"]["held_by"] == []
    code, one = await svc.call("root", "GET", f"agents/{agent_id()}")
    assert code == 200 and one["id"] == agent["id"] and one["cpu"]["threads"] >= 1
    code, live = await svc.call("root", "GET", f"agents/{agent_id()}/live-stats")
    assert code == 200 and live["accelerators"][0]["devices"][0]["utilisation_percent"] == 0.0
    assert isinstance(live["memory"]["total"], int)


@pytest.mark.parametrize("actor, path, status, message", [
    ("alice", "agents", 403, "only superadmins see hardware inventory"),
    ("dadmin", "agents/x/live-stats", 403, "only superadmins see hardware inventory"),
    ("root", "agents/i-elsewhere", 404, "unknown agent 'i-elsewhere'"),
    ("root", "agents/i-elsewhere/live-stats", 404, "unknown agent"),
    ("root", "agents?limit=x", 400, "limit"),
])
async def test_agents_refusals(svc, actor, path, status, message):
    code, body = await svc.call(actor, "GET", path)
    assert code == status and message in body["message"], body
