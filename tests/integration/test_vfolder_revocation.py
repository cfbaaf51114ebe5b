"""Taking access away reaches running sessions: a session mounting a folder its user lost (kicked,
unshared, left the group, made private) or now may only read under a read-write mount is stopped,
with the reason; the service asks the hub at once after the change (issue 11, hole 5)."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import select
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from backendai_hub.models import AuditLog, Group, KernelSession, SessionStatus, User, VFolderGrant
from backendai_hub.service.culler import Culler
from backendai_hub.vfolders.mounts import revoked_mounts, session_mounts
from tests.integration.service_harness import service_fixtures
from tests.integration.vfolder_harness import Service

template, svc = service_fixtures(Service)


async def ok(svc, actor, method, path, body=None):
    code, payload = await svc.call(actor, method, path, body)
    assert code in (200, 201, 204), (actor, method, path, code, payload)
    return payload


def start_session(svc, username: str, group: str, folders: list[str], server: str = "") -> int:
    """A live session of ``username`` mounting ``folders`` as the spawner records it."""
    with svc.db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        g = s.scalar(select(Group).where(Group.name == group, Group.domain_id == user.domain_id))
        k = KernelSession(user=user, server_name=server, keypair=user.main_keypair, group=g,
                          domain_id=user.domain_id, image="img", slots={}, allocation={},
                          status=SessionStatus.running)
        s.add(k)
        s.flush()
        session_mounts(s, svc.storage, username, folders, session_id=k.id)
        return k.id


def revoked(svc) -> dict[str, str]:
    with svc.db.session(readonly=True) as s:
        return {f"{r.username}/{r.server_name}": r.reason for r in revoked_mounts(s)}


async def invite(svc, folder: str, who: str, perm: str) -> None:
    await ok(svc, "alice", "POST", f"vfolders/{folder}/invitations", {"emails": [f"{who}@example.com"],
                                                                        "permission": perm})
    inv = (await ok(svc, who, "GET", "vfolder-invitations"))["incoming"][0]["id"]
    await ok(svc, who, "POST", f"vfolder-invitations/{inv}/accept")


async def test_kicking_a_collaborator_revokes_their_running_sessions_mount(svc):
    await ok(svc, "alice", "POST", "vfolders", {"name": "mine"})
    await invite(svc, "mine", "bob", "rw")
    start_session(svc, "bob", "cv", ["mine"], server="work")
    start_session(svc, "alice", "ml", ["mine"])
    assert revoked(svc) == {}
    await ok(svc, "alice", "DELETE", "vfolders/mine/collaborators/bob")
    assert revoked(svc) == {"bob/work": "access to vfolder 'mine' was revoked"}  # the owner's stays


async def test_a_permission_lowered_under_a_read_write_mount_revokes_it(svc):
    await ok(svc, "dadmin", "POST", "vfolders", {"name": "shared", "group": "ml"})
    start_session(svc, "carol", "ml", ["shared"])
    start_session(svc, "mia", "ml", ["shared"])
    await ok(svc, "dadmin", "POST", "vfolders/shared/share", {"users": ["carol"], "permission": "ro"})
    assert revoked(svc) == {"carol/": "access to vfolder 'shared' was reduced to read-only"}
    # a read-only mount under a read-only permission is fine
    with svc.db.session() as s:
        s.query(KernelSession).filter(KernelSession.user.has(username="carol")).update(
            {"status": SessionStatus.terminated}, synchronize_session=False)
    start_session(svc, "carol", "ml", ["shared"], server="again")
    assert revoked(svc) == {}


async def test_leaving_the_group_or_a_folder_made_private_revokes(svc):
    await ok(svc, "dadmin", "POST", "vfolders", {"name": "shared", "group": "ml"})
    await ok(svc, "alice", "POST", "vfolders", {"name": "pub", "public": True})
    start_session(svc, "mia", "ml", ["shared"])
    start_session(svc, "bob", "cv", ["pub"])
    await ok(svc, "root", "PATCH", "users/mia", {"remove_groups": ["ml"]})
    await ok(svc, "alice", "PATCH", "vfolders/pub", {"public": False})
    assert revoked(svc) == {"mia/": "access to vfolder 'shared' was revoked",
                            "bob/": "access to vfolder 'pub' was revoked"}


class FakeHubAPI:
    """The hub's REST API as the culler uses it: it records the servers it is asked to stop."""

    def __init__(self):
        self.deleted: list[str] = []
        outer = self

        class Servers(web.RequestHandler):
            def delete(self, path):
                outer.deleted.append(path)
                self.set_status(204)

            def get(self, path):
                self.finish(json.dumps([] if path == "users" else {"servers": {}}))  # GET /users is a list

        sockets = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hub/api"
        self.server = HTTPServer(web.Application([(r"/hub/api/(.*)", Servers)]))
        self.server.add_sockets(sockets)


async def test_the_service_stops_the_session_at_once_after_the_kick_with_the_reason(svc):
    hub = FakeHubAPI()
    culler = Culler(svc.db, hub.url, "service-token", interval=3600)  # no help from the interval
    svc.app.settings["culler"] = culler
    task = asyncio.ensure_future(culler.run_forever())
    try:
        await ok(svc, "alice", "POST", "vfolders", {"name": "mine"})
        await invite(svc, "mine", "bob", "ro")
        sid = start_session(svc, "bob", "cv", ["mine"], server="work")
        await asyncio.sleep(0.3)
        assert hub.deleted == []
        await ok(svc, "alice", "DELETE", "vfolders/mine/collaborators/bob")
        for _ in range(50):
            if hub.deleted:
                break
            await asyncio.sleep(0.1)
        assert hub.deleted == ["users/bob/servers/work"]
        with svc.db.session(readonly=True) as s:
            assert s.get(KernelSession, sid).status_info == "stopping: access to vfolder 'mine' was revoked"
            # the kick and the cull it led to, in the audit log, by alice and by the service
            rows = s.scalars(select(AuditLog).order_by(AuditLog.seq.desc()).limit(2)).all()[::-1]
            assert [(r.actor, r.source, r.entity_type, r.operation, r.entity_id, r.description) for r in rows] == [
                ("alice", "rest", "vfolder", "kick", "mine/bob", ""),
                (None, "service", "session", "cull", f"bob/work#{sid}", "access to vfolder 'mine' was revoked")]
        # asked once: the next passes leave a session that is already stopping to the hub
        culler.poke()
        await asyncio.sleep(0.5)
        assert hub.deleted == ["users/bob/servers/work"]
    finally:
        task.cancel()
        hub.server.stop()


async def test_revocation_is_found_by_the_periodic_pass_too(svc):
    """A change made without the service (the local CLI writes the database) is caught by the next pass."""
    await ok(svc, "alice", "POST", "vfolders", {"name": "mine"})
    await invite(svc, "mine", "bob", "rw")
    start_session(svc, "bob", "cv", ["mine"])
    with svc.db.session() as s:  # the grant row the accepted invitation left
        s.query(VFolderGrant).delete()
    hub = FakeHubAPI()
    try:
        assert await Culler(svc.db, hub.url, "t").run_once() == [("bob", "", "access to vfolder 'mine' was revoked")]
        assert hub.deleted == ["users/bob/server"]
    finally:
        hub.server.stop()
