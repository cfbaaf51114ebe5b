"""The culler's passes over time, on a real database and a hub API on a real port: a session is warned
``cull_warning`` seconds ahead, stopped no sooner than that after its warning, and an idle stop is
called off by activity. The session's server is the one part played here (ScriptedProbe: the real one
is driven in tests/browser/test_cull_warning.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from backendai_hub.models import AuditLog, Group, KernelSession, SessionStatus, User
from backendai_hub.service.culler import Culler
from backendai_hub.service.session_probe import SessionProbe
from tests.integration.service_harness import service_fixtures
from tests.integration.vfolder_harness import Service

template, svc = service_fixtures(Service)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


class HubAPI:
    """The hub's REST API as the culler uses it: one ready server whose last_activity a test sets."""

    def __init__(self, user: str):
        self.deleted: list[str] = []
        self.last_activity: datetime | None = None
        outer = self

        class Users(web.RequestHandler):
            def get(self, path):
                last = outer.last_activity.isoformat() if outer.last_activity else None
                servers = {} if outer.deleted else {"": {"ready": True, "pending": None, "last_activity": last}}
                self.finish(json.dumps([{"name": user, "servers": servers}] if path.startswith("users?")
                                       or path == "users" else {"name": user, "servers": servers}))

            def delete(self, path):
                outer.deleted.append(path)
                self.set_status(204)

        sockets = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hub/api"
        self.server = HTTPServer(web.Application([(r"/hub/api/(.*)", Users)]))
        self.server.add_sockets(sockets)


class ScriptedProbe(SessionProbe):
    """The session's server as a script: the kernels and terminals it lists, the warnings it gets."""

    def __init__(self):
        super().__init__()
        self.kernels: list = []
        self.terminals: list = []
        self.util: float | None = None
        self.warnings: list[tuple[datetime | None, str | None]] = []

    def base_url(self, container_id):
        return "http://session.invalid/"

    async def server_state(self, base):
        return self.kernels, self.terminals

    def utilisation(self, allocation):
        return self.util

    async def warn(self, base, stop_at, reason):
        self.warnings.append((stop_at, reason))
        return True


def start_session(svc, username: str, *, lifetime=None, idle=None, idle_accel=None, devices=None,
                  server: str = "") -> int:
    with svc.db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        p = user.main_keypair.resource_policy
        p.max_session_lifetime, p.idle_timeout, p.idle_timeout_accelerator = lifetime, idle, idle_accel
        g = s.scalar(select(Group).where(Group.domain_id == user.domain_id))
        k = KernelSession(user=user, server_name=server, keypair=user.main_keypair, group=g, domain_id=user.domain_id,
                          image="img", slots={}, allocation={"devices": devices or {}},
                          status=SessionStatus.running, started_at=T0, container_id="c0ffee")
        s.add(k)
        s.flush()
        return k.id


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_a_lifetime_stop_is_warned_ahead_and_comes_no_sooner(svc):
    sid = start_session(svc, "bob", lifetime=600)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=120)
    try:
        assert await culler.run_once(at(400)) == [] and probe.warnings == []  # 200 s left: not yet
        assert await culler.run_once(at(500)) == []
        # the pass came 100 s before the limit: the stop waits for the warning's whole 120 s
        assert probe.warnings == [(at(620), "max session lifetime of 600 s reached")]
        assert await culler.run_once(at(560)) == [] and len(probe.warnings) == 1  # told once
        assert await culler.run_once(at(610)) == [] and hub.deleted == []
        assert await culler.run_once(at(620)) == [("bob", "", "max session lifetime of 600 s reached")]
        assert hub.deleted == ["users/bob/server"]
        with svc.db.session(readonly=True) as s:
            row = s.scalars(select(AuditLog).where(AuditLog.operation == "cull")).one()
            assert (row.entity_id, row.description) == (f"bob/#{sid}", "max session lifetime of 600 s reached")
    finally:
        hub.server.stop()


async def test_a_session_found_overdue_unwarned_gets_the_warnings_lead_time(svc):
    start_session(svc, "bob", idle=60)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    hub.last_activity = at(0)
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=300)
    try:
        assert await culler.run_once(at(1000)) == []  # long idle, but never told
        assert probe.warnings == [(at(1300), "idle for more than 60 s")]
        assert await culler.run_once(at(1299)) == []
        stopped = await culler.run_once(at(1300))
        assert [(u, r.split(" (")[0]) for u, _, r in stopped] == [("bob", "idle for more than 60 s")]
        assert "last activity 2026-03-01T09:00:00+00:00" in stopped[0][2]
    finally:
        hub.server.stop()


async def test_activity_calls_an_idle_stop_off(svc):
    start_session(svc, "bob", idle=600)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    hub.last_activity = at(0)
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=120)
    try:
        assert await culler.run_once(at(500)) == []
        assert probe.warnings == [(at(620), "idle for more than 600 s")]
        # the user's long cell runs: a busy kernel is activity, the warning goes
        probe.kernels = [{"id": "k", "execution_state": "busy", "last_activity": at(10).isoformat()}]
        assert await culler.run_once(at(700)) == []
        assert probe.warnings[-1] == (None, None)
        # it finishes; the terminal is quiet since: idle counts from the kernel's last activity
        probe.kernels = [{"id": "k", "execution_state": "idle", "last_activity": at(700).isoformat()}]
        probe.terminals = [{"name": "1", "last_activity": at(650).isoformat()}]
        assert await culler.run_once(at(1180)) == [] and probe.warnings[-1] == (at(1300), "idle for more than 600 s")
        assert await culler.run_once(at(1300)) != [] and hub.deleted == ["users/bob/server"]
    finally:
        hub.server.stop()


async def test_busy_accelerators_keep_a_session_and_idle_ones_meet_their_own_timeout(svc):
    start_session(svc, "bob", idle=3600, idle_accel=300, devices={"cuda.device": {"0": "1"}})
    hub, probe = HubAPI("bob"), ScriptedProbe()
    hub.last_activity = at(0)
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=0, util_window=120, util_threshold=10)
    try:
        probe.util = 90.0
        for t in range(0, 1200, 60):  # training for 20 min without a keystroke
            assert await culler.run_once(at(t)) == []
        probe.util = 0.0
        for t in range(1200, 1440, 60):
            assert await culler.run_once(at(t)) == []  # the window's mean still shows the work
        # the mean over 120 s fell under 10 % after the sample at 1260: idle from then, 300 s
        assert await culler.run_once(at(1500)) == []
        stopped = await culler.run_once(at(1560))
        assert stopped and stopped[0][2].startswith("idle for more than 300 s while holding accelerators (")
        assert "accelerators busy 2026-03-01T09:21:00+00:00" in stopped[0][2]
    finally:
        hub.server.stop()


async def test_a_servers_time_without_a_zone_is_no_activity(svc):
    """The session's server is its user's: a time without a zone (which would not even compare with the
    hub's) counts as no activity, and the pass goes on."""
    start_session(svc, "bob", idle=60)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    hub.last_activity = at(0)
    probe.kernels = [{"id": "k", "execution_state": "idle", "last_activity": "2026-03-01T09:10:00"}]
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=0)
    try:
        stopped = await culler.run_once(at(1000))
        assert [(u, r.split(" (")[0]) for u, _, r in stopped] == [("bob", "idle for more than 60 s")]
    finally:
        hub.server.stop()


async def test_a_servers_time_in_the_future_counts_as_now_and_the_lifetime_still_holds(svc):
    """A server reporting activity far ahead (year 9999: beyond what date arithmetic takes) is active now,
    as one reporting now would be; it cannot outlive its max lifetime."""
    start_session(svc, "bob", idle=60, lifetime=2000)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    hub.last_activity = at(0)
    probe.terminals = [{"name": "1", "last_activity": "9999-12-31T23:59:59Z"}]
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=0)
    try:
        assert await culler.run_once(at(1000)) == []
        assert await culler.run_once(at(2001)) == [("bob", "", "max session lifetime of 2000 s reached")]
    finally:
        hub.server.stop()


async def test_one_sessions_failure_does_not_end_the_pass(svc):
    start_session(svc, "bob", idle=60)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    hub.last_activity = at(0)

    async def broken(base):
        raise RuntimeError("the session answered nonsense")

    probe.server_state = broken
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=0)
    try:
        assert await culler.run_once(at(1000)) == []  # logged, and the pass (and the next ones) go on
        probe.server_state = ScriptedProbe.server_state.__get__(probe)
        assert [u for u, _, _ in await culler.run_once(at(1001))] == ["bob"]
    finally:
        hub.server.stop()


async def test_sessions_are_read_at_once_up_to_the_concurrency_and_the_hub_is_asked_once(svc):
    names = [f"s{i}" for i in range(5)]
    for name in names:
        start_session(svc, "bob", idle=60, server=name)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    asked: list[str] = []
    spec = {"ready": True, "pending": None, "last_activity": at(0).isoformat()}

    class Users(web.RequestHandler):  # bob with five ready servers, all idle since T0
        def get(self, path):
            asked.append(self.request.uri.split("/hub/api/", 1)[1])
            self.finish(json.dumps([{"name": "bob", "servers": {n: spec for n in names}}]))

        def delete(self, path):
            hub.deleted.append(path)
            self.set_status(204)

    hub.server.stop()
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([(r"/hub/api/(.*)", Users)]))
    server.add_sockets(sockets)
    inflight, most = 0, 0

    async def slow_state(base):  # each session's server takes a while to answer
        nonlocal inflight, most
        inflight += 1
        most = max(most, inflight)
        await asyncio.sleep(0.05)
        inflight -= 1
        return [], []

    probe.server_state = slow_state
    culler = Culler(svc.db, f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hub/api", "t", probe=probe,
                    warning=0, concurrency=3)
    try:
        stopped = await culler.run_once(at(1000))
        assert sorted(srv for _, srv, _ in stopped) == names  # every idle session stopped in one pass
        assert sorted(hub.deleted) == [f"users/bob/servers/{n}" for n in names]
        assert most == 3  # read three at a time: neither one by one nor unbounded
        assert [p for p in asked if p.startswith("users")] == ["users?state=active&offset=0&limit=200"]
    finally:
        server.stop()


async def test_a_session_too_loaded_to_list_its_kernels_counts_as_busy_from_when_last_seen_busy(svc):
    """A running cell can make the server too slow to answer the culler (its kernel list unread): it
    stays active from when a kernel was last seen executing, and idles from then if it stays unread."""
    start_session(svc, "bob", idle=600)
    hub, probe = HubAPI("bob"), ScriptedProbe()
    hub.last_activity = at(0)
    culler = Culler(svc.db, hub.url, "t", probe=probe, warning=0)
    unread = probe.server_state

    async def no_answer(base):
        return None, None

    try:
        probe.kernels = [{"execution_state": "busy", "last_activity": at(0).isoformat()}]
        assert await culler.run_once(at(500)) == []  # seen executing at 500
        probe.server_state = no_answer
        assert await culler.run_once(at(900)) == []  # unread: idle since 500, not since 0
        assert await culler.run_once(at(1099)) == [] and hub.deleted == []
        assert [u for u, _, _ in await culler.run_once(at(1101))] == ["bob"]  # unread 600 s after: idle
    finally:
        probe.server_state = unread
        hub.server.stop()
