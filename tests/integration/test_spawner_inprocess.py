"""The spawner glue in process, driven by JupyterHub's own User.spawn/stop, on our real database; no Docker."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy import select
from tornado import web

from backendai_hub.accelerators import Accelerators
from backendai_hub.db import Database
from backendai_hub.models import KernelSession, SessionStatus, User, VFolder, VFolderMount
from backendai_hub.vfolders import StorageHosts
from tests.conftest import database_with
from tests.mocking import (
    BadSpawner,
    InProcessHub,
    NeverSpawner,
    SilentSpawner,
    SlowSpawner,
    events_until,
    spawner_config,
)

TENANCY = {
    "resource_policies": {"keypair": [{"name": "roomy", "max_concurrent_sessions": 10}]},
    "domains": [{"name": "acme", "allowed_vfolder_hosts": ["local"]}],
    "groups": [{"name": "ml", "domain": "acme", "total_resource_slots": {"cpu": 2}}],
    "users": [{"username": u, "email": f"{u}@example.com", "domain": "acme", "groups": ["ml"]}
              for u in ("ann", "ben", "cat")],
    "keypairs": [{"user": u, "resource_policy": "roomy"} for u in ("ann", "ben", "cat")],
}
ONE_CPU = {"resources": {"cpu": 1, "mem": "1g"}}
TWO_CPUS = {"resources": {"cpu": 2, "mem": "1g"}}
SINGLETONS = (Database, StorageHosts, Accelerators)

db = database_with(TENANCY)


@pytest.fixture
async def make_hub(db, db_url, tmp_path):
    """An InProcessHub on the tenancy database; ``make_hub(**spawner_settings)``. Its servers stop afterwards."""
    hubs = []

    def make(**settings):
        for cls in SINGLETONS:  # the spawner's database, storage and plugins are configured by this hub
            cls.clear_instance()
        settings.setdefault("host_capacity", {"cpu": 1, "mem": "8g"})
        settings.setdefault("queue_timeout", 30)
        hub = InProcessHub(spawner_config(db_url, str(tmp_path / "key"), str(tmp_path / "vfolders"), **settings))
        hubs.append(hub)
        return hub

    yield make
    try:
        for hub in hubs:
            for user in hub.users.values():
                for name, spawner in list(user.spawners.items()):
                    if spawner.server is not None or spawner.pending:
                        await hub.stop(user.name, name)
    finally:
        if Database.initialized():
            Database.instance().dispose()
        for cls in SINGLETONS:
            cls.clear_instance()


def sessions(db, user=None) -> list[tuple[str, str, str]]:
    """(user, status, status_info) of every session row, oldest first."""
    with db.session() as s:
        rows = s.scalars(select(KernelSession).order_by(KernelSession.id)).all()
        return [(r.user.username, r.status.value, r.status_info) for r in rows
                if user is None or r.user.username == user]


async def test_start_admits_records_and_launches_the_jailed_container(db, make_hub):
    hub = make_hub()
    spawner, spawn = hub.spawn("ann", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    assert spawner.ready
    with db.session() as s:
        row = s.scalar(select(KernelSession))
        assert (row.status, row.container_id, row.slots) == (SessionStatus.running, spawner.container.id,
                                                              {"cpu": "1", "mem": str(1 << 30)})
        assert spawner.container.environment["BACKENDAI_SESSION_ID"] == str(row.id)
    c = spawner.container
    assert c.image == "backendai-hub/notebook:latest"
    assert c.environment["BACKENDAI_GROUP"] == "ml" and c.environment["BACKENDAI_RESOURCES"] == "cpu=1,mem=1g"
    assert c.host_config["read_only"] and c.host_config["cap_drop"] == ["ALL"]
    assert (c.host_config["cpu_quota"], c.host_config["mem_limit"]) == (100_000, 1 << 30)
    assert c.create_kwargs["user"] == "1000:1000"
    await hub.stop("ann")
    assert sessions(db) == [("ann", "terminated", "stopped")]
    assert not c.running


async def test_progress_names_each_stage_of_a_slow_container(db, make_hub):
    hub = make_hub()
    spawner, spawn = hub.spawn("ann", options=ONE_CPU, spawner_class=SlowSpawner)
    events = await events_until(spawner, "waiting for the server to answer")
    assert [e["message"] for e in events] == ["checking the request against your policies",
                                              "admitted to group 'ml': cpu=1,mem=1g", "creating the container",
                                              "waiting for the server to answer"]
    await asyncio.wait_for(spawn, 20)
    assert sessions(db) == [("ann", "running", "")]


async def test_a_failure_after_admission_releases_the_slots(db, make_hub):
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"})
    spawner, spawn = hub.spawn("ann", options=TWO_CPUS, spawner_class=BadSpawner)
    with pytest.raises(RuntimeError, match="the engine refused to start the container"):
        await asyncio.wait_for(spawn, 20)
    assert sessions(db) == [("ann", "terminated", "failed to start")]
    # the group allows cpu=2: had ann's slots leaked, ben would be refused
    spawner, spawn = hub.spawn("ben", options=TWO_CPUS)
    await asyncio.wait_for(spawn, 20)
    assert sessions(db, "ben") == [("ben", "running", "")]


async def test_a_request_over_policy_is_denied_with_the_level_and_slot(db, make_hub):
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"})
    spawner, spawn = hub.spawn("ann", options={"resources": {"cpu": 3}})
    with pytest.raises(web.HTTPError) as e:
        await asyncio.wait_for(spawn, 20)
    assert e.value.status_code == 403
    assert "group 'ml' allows cpu=2, 0 in use, 3 requested" in e.value.log_message
    assert sessions(db) == [] and spawner.container is None


async def test_beyond_host_capacity_a_session_queues_and_starts_when_capacity_frees(db, make_hub):
    hub = make_hub()  # the host has 1 cpu
    first, spawn_first = hub.spawn("ann", options=ONE_CPU)
    await asyncio.wait_for(spawn_first, 20)
    second, spawn_second = hub.spawn("ben", options=ONE_CPU)
    await events_until(second, "queued for free capacity: position 1")
    assert sessions(db, "ben") == [("ben", "queued", "")] and second.container is None
    await hub.stop("ann")
    await asyncio.wait_for(spawn_second, 20)
    assert sessions(db) == [("ann", "terminated", "stopped"), ("ben", "running", "")]


async def test_stopping_a_queued_spawn_releases_its_place_and_ends_start(db, make_hub):
    hub = make_hub()
    _, spawn_ann = hub.spawn("ann", options=ONE_CPU)
    await asyncio.wait_for(spawn_ann, 20)
    ben, spawn_ben = hub.spawn("ben", options=ONE_CPU)
    await events_until(ben, "position 1")
    cat, spawn_cat = hub.spawn("cat", options=ONE_CPU)
    await events_until(cat, "position 2")
    await hub.stop("ben")  # ben gives up waiting
    assert spawn_ben.done() and spawn_ben.cancelled()
    assert sessions(db, "ben") == [("ben", "terminated", "left the queue: cancelled")]
    assert ben.container is None
    await events_until(cat, "position 1")  # ben's place is gone
    await hub.stop("ann")
    await asyncio.wait_for(spawn_cat, 20)
    assert sessions(db, "cat") == [("cat", "running", "")]


async def test_a_queued_session_gives_up_after_the_queue_timeout(db, make_hub):
    hub = make_hub(queue_timeout=0.3)
    _, spawn_ann = hub.spawn("ann", options=ONE_CPU)
    await asyncio.wait_for(spawn_ann, 20)
    _, spawn_ben = hub.spawn("ben", options=ONE_CPU)
    with pytest.raises(web.HTTPError, match="in the queue without free capacity"):
        await asyncio.wait_for(spawn_ben, 20)
    assert sessions(db, "ben") == [("ben", "terminated", "left the queue: timed out")]


@pytest.mark.parametrize("spawner_class, setting, reason", [
    (NeverSpawner, "start_timeout", "failed to start"),  # start() never returns: the hub cancels it
    (SilentSpawner, "http_timeout", "stopped"),  # started, never answers: the hub stops it
])
async def test_a_server_that_never_gets_ready_is_given_up_and_released(db, make_hub, spawner_class, setting,
                                                                       reason):
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"}, **{setting: 1})
    spawner, spawn = hub.spawn("ann", options=TWO_CPUS, spawner_class=spawner_class)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(spawn, 20)
    assert sessions(db) == [("ann", "terminated", reason)]
    assert not spawner.container.running or spawner_class is NeverSpawner
    _, spawn = hub.spawn("ben", options=TWO_CPUS)  # the group's two cpus are free again
    await asyncio.wait_for(spawn, 20)


def add_folder(db, storage_root, owner: str, name: str) -> str:
    """A ready folder of ``owner`` on the 'local' host, with its directory."""
    vfid = uuid.uuid4().hex
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == owner))
        s.add(VFolder(id=vfid, name=name, live_name=name, owner_key=f"u:{user.id}", host="local",
                      domain_id=user.domain_id, user_id=user.id, creator_id=user.id))
    os.makedirs(os.path.join(storage_root, vfid[:2], vfid))
    return vfid


async def test_mounts_are_planned_before_admission_and_recorded_after(db, make_hub, tmp_path):
    hub = make_hub()
    vfid = add_folder(db, str(tmp_path / "vfolders"), "ann", "data")
    # an unknown folder is refused before anything is admitted
    _, spawn = hub.spawn("ann", options={**ONE_CPU, "vfolders": ["data", "nope"]})
    with pytest.raises(web.HTTPError, match="vfolders: no vfolder 'nope' that you may mount"):
        await asyncio.wait_for(spawn, 20)
    assert sessions(db) == []
    spawner, spawn = hub.spawn("ann", options={**ONE_CPU, "vfolders": ["data"]})
    await asyncio.wait_for(spawn, 20)
    with db.session() as s:
        mounts = [(m.vfolder_id, m.target, m.read_only) for m in s.scalars(select(VFolderMount))]
    assert mounts == [(vfid, "/home/work/data", False)]
    assert {"Target": "/home/work/data", "Source": str(tmp_path / "vfolders" / vfid[:2] / vfid), "Type": "bind",
            "ReadOnly": False} in spawner.container.host_config["mounts"]


async def test_a_folder_deleted_while_the_session_queued_is_refused_and_the_session_released(db, make_hub, tmp_path):
    hub = make_hub()
    add_folder(db, str(tmp_path / "vfolders"), "ben", "data")
    _, spawn_ann = hub.spawn("ann", options=ONE_CPU)
    await asyncio.wait_for(spawn_ann, 20)
    ben, spawn_ben = hub.spawn("ben", options={**ONE_CPU, "vfolders": ["data"]})
    await events_until(ben, "position 1")
    with db.session() as s:
        s.delete(s.scalar(select(VFolder).where(VFolder.name == "data")))
    await hub.stop("ann")
    with pytest.raises(web.HTTPError, match="vfolders: no vfolder 'data' that you may mount"):
        await asyncio.wait_for(spawn_ben, 20)
    assert sessions(db, "ben") == [("ben", "terminated", "vfolder mounts refused")]

