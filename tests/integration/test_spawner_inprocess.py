"""The spawner glue in process, driven by JupyterHub's own User.spawn/stop, on our real database; no Docker."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from jupyterhub import orm
from jupyterhub.user import User as HubUser
from sqlalchemy import select
from tornado import web

from backendai_hub.accelerators import Accelerators
from backendai_hub.db import Database
from backendai_hub.models import KernelSession, SessionStatus, User, VFolder, VFolderMount
from backendai_hub.vfolders import StorageHosts
from tests.conftest import database_with
from tests.mocking import (
    BadSpawner,
    FakeContainer,
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
              for u in ("ann", "ben", "cat", "a", "a-b")],
    "keypairs": [{"user": u, "resource_policy": "roomy"} for u in ("ann", "ben", "cat", "a", "a-b")],
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



def oauth_clients(hub) -> dict[str, str]:
    """The hub's OAuth clients of servers: identifier -> redirect URI."""
    return {c.identifier: c.redirect_uri for c in hub.db.query(orm.OAuthClient) if c.identifier != "jupyterhub"}


async def test_user_a_server_b_and_user_a_b_keep_their_own_identifiers(db, make_hub):
    # JupyterHub's own default names both OAuth clients 'jupyterhub-user-a-b'
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"})
    named, spawn = hub.spawn("a", "b", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    default, spawn = hub.spawn("a-b", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)  # the second spawn was a 500 (one OAuth client, two servers)
    assert oauth_clients(hub) == {named.oauth_client_id: "/user/a/b/oauth_callback",
                                  default.oauth_client_id: "/user/a-b/oauth_callback"}
    assert named.container.environment["JUPYTERHUB_CLIENT_ID"] == named.oauth_client_id
    assert default.container.environment["JUPYTERHUB_CLIENT_ID"] == default.oauth_client_id
    assert named.container.name != default.container.name
    assert named.proxy_spec != default.proxy_spec
    # stopping one leaves the other's client, and its redirect, as they were
    await hub.stop("a-b")
    assert oauth_clients(hub) == {named.oauth_client_id: "/user/a/b/oauth_callback"}
    assert sessions(db) == [("a", "running", ""), ("a-b", "terminated", "stopped")]


async def test_a_container_name_tells_other_sessions_nothing_of_its_tenant(db, make_hub):
    # every session on the network resolves every container's name (and its address back to the name)
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"})
    spawner, spawn = hub.spawn("ann", "thesis", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    first = spawner.container
    assert "ann" not in first.name and "thesis" not in first.name
    assert not {"hostname", "domainname", "aliases", "networking_config", "links"} & set(first.create_kwargs)
    assert first.create_kwargs["labels"]["ai.backend.hub.user"] == "ann"  # operators find it by its labels
    assert first.create_kwargs["labels"]["ai.backend.hub.server"] == "thesis"
    await hub.stop("ann", "thesis")
    spawner, spawn = hub.spawn("ann", "thesis", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    assert spawner.container.name != first.name  # not guessable from an earlier session either


def restarted(hub, name: str) -> HubUser:
    """The hub's user ``name`` as a restarted hub sees it: a new wrapper, its spawners loaded from their state."""
    old = hub.users[name]
    hub.db.commit()
    hub.users[name] = HubUser(old.orm_user, old.settings)
    return hub.users[name]


async def test_a_restarted_hub_finds_its_sessions_by_the_names_they_started_with(db, make_hub):
    hub = make_hub()
    spawner, spawn = hub.spawn("ann", "thesis", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    again = restarted(hub, "ann").spawners["thesis"]
    names = ("oauth_client_id", "object_name", "object_id", "session_id", "firewall_tag")
    assert {n: getattr(again, n) for n in names} == {n: getattr(spawner, n) for n in names}
    assert again.firewall_tag == f"session-{spawner.session_id}.{spawner.container.id}"
    again.container = spawner.container
    await hub.stop("ann", "thesis")
    assert oauth_clients(hub) == {} and sessions(db) == [("ann", "terminated", "stopped")]


async def test_a_session_started_before_these_names_keeps_its_own_until_it_stops(db, make_hub):
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"})
    # what an older spawner left of user a's running server b: JupyterHub's client id, a readable
    # container name, egress rules tagged by the session id alone
    user = hub.user("a")
    orm_spawner = orm.Spawner(user=user.orm_user, name="b")
    hub.db.add(orm_spawner)
    orm_spawner.oauth_client = hub.oauth_provider.add_client("jupyterhub-user-a-b", "secret",
                                                             "/user/a/b/oauth_callback")
    orm_spawner.state = {"object_id": "c0ffee", "object_name": "jupyter-a--b", "session_id": 7}
    spawner = restarted(hub, "a").spawners["b"]
    assert (spawner.oauth_client_id, spawner.object_name, spawner.firewall_tag) == (
        "jupyterhub-user-a-b", "jupyter-a--b", "session-7")
    spawner.container = FakeContainer(id="c0ffee", name="jupyter-a--b", image="", environment={}, host_config={},
                                      create_kwargs={})
    await hub.stop("a", "b")
    assert oauth_clients(hub) == {}  # the hub deleted the client the session used
    # user a-b's default server has that id: it is free again, and the next server b gets its own
    _, spawn = hub.spawn("a-b", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    spawner, spawn = hub.spawn("a", "b", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    assert oauth_clients(hub) == {"jupyterhub-user-a-b": "/user/a-b/oauth_callback",
                                  "jupyterhub-user-a~b": "/user/a/b/oauth_callback"}
    assert spawner.object_name != "jupyter-a--b"


@pytest.mark.parametrize("template", ["{prefix}-{username}--{servername}", "{prefix}-{session_token}"])
async def test_container_names_stay_apart_for_every_name_a_hub_lets_in(db, make_hub, template):
    # server names as JupyterHub 6 creates them (lowercase slugs) and as older hubs let them in
    hub = make_hub(name_template=template)
    user = hub.user("ann")
    servers = ["", "b", "b-c", "b--c", "B", "b.c", "b_c", "b~c", "b%7Ec", "b c", "-2d", "\u00e9"]
    for server in servers[1:]:
        hub.db.add(orm.Spawner(user=user.orm_user, name=server))
    hub.db.commit()
    names = set()
    for server in servers:
        spawner = user.spawners[server]
        names.add(spawner.name_template.format(**spawner.template_namespace()))
    assert len(names) == len(servers)


def audit_rows(db) -> list[tuple[str, str, str, str]]:
    from backendai_hub.models import AuditLog

    with db.session() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.entity_type == "session").order_by(AuditLog.seq)).all()
        return [(r.actor, r.operation, r.status.value, r.description) for r in rows]


async def test_a_sessions_admission_start_stop_and_refusals_are_in_the_audit_log(db, make_hub):
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"})
    spawner, spawn = hub.spawn("ann", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    await hub.stop("ann")
    spawner, spawn = hub.spawn("ben", options={"resources": {"cpu": 3}})
    with pytest.raises(web.HTTPError):
        await asyncio.wait_for(spawn, 20)
    spawner, spawn = hub.spawn("cat", options=TWO_CPUS, spawner_class=BadSpawner)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(spawn, 20)
    rows = audit_rows(db)
    assert [r[:3] for r in rows] == [
        ("ann", "admit", "success"), ("ann", "start", "success"), ("ann", "stop", "success"),
        ("ben", "admit", "rejected"),
        ("cat", "admit", "success"), ("cat", "start", "error")]
    assert rows[0][3] == "group 'ml': cpu=1,mem=1g"
    assert rows[3][3] == "group 'ml' allows cpu=2, 0 in use, 3 requested"
