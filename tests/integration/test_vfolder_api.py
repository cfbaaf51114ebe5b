"""Vfolders through the real REST service: who may do what (a matrix), and the checks a user expects."""

import os

import pytest
from sqlalchemy import select

from backendai_hub.errors import Forbidden
from backendai_hub.models import Group, KernelSession, KeyPair, SessionStatus, User
from backendai_hub.vfolders.mounts import session_mounts
from tests.integration.service_harness import service_fixtures
from tests.integration.vfolder_harness import Service

template, svc = service_fixtures(Service)


async def ok(svc, actor, method, path, body=None, status=(200, 201, 204)):
    code, payload = await svc.call(actor, method, path, body)
    assert code in ((status,) if isinstance(status, int) else status), (actor, method, path, code, payload)
    return payload


async def world(svc):
    """alice's 'mine' (bob ro, carol rw by invitation), the group folder 'shared' of ml (members rw,
    carol overridden to ro, cloneable), alice's public 'pub'; a file in each."""
    await ok(svc, "alice", "POST", "vfolders", {"name": "mine"})
    await ok(svc, "alice", "POST", "vfolders", {"name": "pub", "public": True})
    for who, perm in (("bob", "ro"), ("carol", "rw")):
        await ok(svc, "alice", "POST", "vfolders/mine/invitations", {"emails": [f"{who}@example.com"], "permission": perm})
        inv = (await ok(svc, who, "GET", "vfolder-invitations"))["incoming"][0]["id"]
        await ok(svc, who, "POST", f"vfolder-invitations/{inv}/accept")
    await ok(svc, "dadmin", "POST", "vfolders", {"name": "shared", "group": "ml", "cloneable": True})
    await ok(svc, "dadmin", "POST", "vfolders/shared/share", {"users": ["carol"], "permission": "ro"})
    for folder, actor in (("mine", "alice"), ("pub", "alice"), ("shared", "dadmin")):
        await ok(svc, actor, "POST", f"vfolders/{folder}/mkdir", {"path": "d"})


# (actor, method, path, body, expected status, fragment of the message or None)
MATRIX = [
    # -- reading --
    ("alice", "GET", "vfolders/mine", None, 200, None),
    ("bob", "GET", "vfolders/mine", None, 200, None),
    ("carol", "GET", "vfolders/mine/files", None, 200, None),
    ("mia", "GET", "vfolders/mine", None, 404, "unknown vfolder 'mine'"),
    ("dadmin", "GET", "vfolders/mine", None, 404, "unknown vfolder 'mine'"),  # private to alice
    ("olivia", "GET", "vfolders/mine", None, 404, "unknown vfolder"),
    ("mia", "GET", "vfolders/shared", None, 200, None),
    ("bob", "GET", "vfolders/shared", None, 404, "unknown vfolder 'shared'"),  # not in ml
    ("olivia", "GET", "vfolders/shared", None, 404, "unknown vfolder"),  # in ml, but of domain other
    ("odadmin", "GET", "vfolders/shared", None, 404, "unknown vfolder"),
    ("root", "GET", "vfolders/shared", None, 200, None),
    ("bob", "GET", "vfolders/pub/files", None, 200, None),
    ("olivia", "GET", "vfolders/pub", None, 404, "unknown vfolder"),
    # -- writing files --
    ("alice", "POST", "vfolders/mine/mkdir", {"path": "a1"}, 201, None),
    ("carol", "POST", "vfolders/mine/mkdir", {"path": "c1"}, 201, None),
    ("bob", "POST", "vfolders/mine/mkdir", {"path": "b1"}, 403, "is ro for you (you were invited with ro): write needs rw"),
    ("mia", "POST", "vfolders/mine/mkdir", {"path": "m1"}, 404, "unknown vfolder"),
    ("mia", "POST", "vfolders/shared/mkdir", {"path": "m2"}, 201, None),
    ("carol", "POST", "vfolders/shared/mkdir", {"path": "c2"}, 403, "shared with you as ro in group 'ml'"),
    ("bob", "POST", "vfolders/pub/mkdir", {"path": "b2"}, 403, "public in your domain (read-only)"),
    ("carol", "DELETE", "vfolders/mine/files?path=d", None, 403, "delete-files needs wd"),
    ("bob", "DELETE", "vfolders/mine/files?path=d", None, 403, "delete-files needs wd"),
    ("mia", "DELETE", "vfolders/shared/files?path=d", None, 403, "delete-files needs wd"),
    ("dadmin", "DELETE", "vfolders/shared/files?path=d", None, 204, None),
    ("alice", "DELETE", "vfolders/mine/files?path=d", None, 204, None),
    # -- managing the folder --
    ("bob", "PATCH", "vfolders/mine", {"name": "x"}, 403, "only the owner of vfolder 'mine' may rename it"),
    ("carol", "DELETE", "vfolders/mine", None, 403, "only the owner of vfolder 'mine' may delete it"),
    ("carol", "POST", "vfolders/mine/invitations", {"emails": ["mia@example.com"]}, 403, "may invite it"),
    ("mia", "DELETE", "vfolders/shared", None, 403, "admins of domain 'default' may delete group vfolder 'shared'"),
    ("mia", "POST", "vfolders/shared/share", {"users": ["carol"], "permission": "wd"}, 403, "may share group vfolder"),
    ("odadmin", "DELETE", "vfolders/shared", None, 404, "unknown vfolder"),
    ("alice", "PATCH", "vfolders/mine", {"cloneable": True}, 200, None),
    ("dadmin", "PATCH", "vfolders/shared", {"permission": "ro"}, 200, None),
    ("alice", "GET", "vfolders/mine/collaborators", None, 200, None),
    ("bob", "GET", "vfolders/mine/collaborators", None, 403, "only the owner"),
    # -- invitations --
    ("alice", "POST", "vfolders/mine/invitations", {"emails": ["olivia@example.com"]}, 404, "unknown user 'olivia@example.com'"),
    ("alice", "POST", "vfolders/mine/invitations", {"emails": ["bob@example.com"]}, 409, "already has access"),
    ("alice", "POST", "vfolders/mine/invitations", {"emails": ["alice@example.com"]}, 400, "owns the vfolder"),
    ("alice", "POST", "vfolders/mine/invitations", {"emails": ["mia@example.com"], "permission": "rx"}, 400, "permission: 'rx'"),
    ("dadmin", "POST", "vfolders/shared/invitations", {"emails": ["bob@example.com"]}, 400, "share it with its members"),
    ("dadmin", "POST", "vfolders/shared/share", {"users": ["bob"]}, 400, "'bob' is not a member of group 'ml'"),
    # -- leaving, kicking, cloning --
    ("alice", "POST", "vfolders/mine/leave", None, 403, "you own it; delete it instead"),
    ("mia", "POST", "vfolders/shared/leave", None, 403, "through a group, not an invitation"),
    ("bob", "POST", "vfolders/pub/clone", {"name": "pubcopy"}, 403, "not cloneable"),
    ("mia", "POST", "vfolders/shared/clone", {"name": "sharedcopy"}, 202, None),
    ("olivia", "POST", "vfolders/shared/clone", {"name": "x"}, 404, "unknown vfolder"),
]


async def test_permission_matrix(svc):
    await world(svc)
    failures = []
    for actor, method, path, body, status, fragment in MATRIX:
        code, payload = await svc.call(actor, method, path, body)
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        if code != status or (fragment and fragment not in message):
            failures.append(f"{actor} {method} {path}: {code} {payload}")
    assert not failures, "\n".join(failures)


async def test_errors_name_the_field(svc):
    cases = [
        ({"name": "a/b"}, 400, "name"), ({"name": ".."}, 400, "name"), ({"name": "x" * 65}, 400, "name"),
        ({"name": ".ssh"}, 400, "name"), ({"name": ""}, 400, "name"), ({"name": 5}, 400, "name"),
        ({"name": "ok", "usage_mode": "films"}, 400, "usage_mode"), ({"name": "ok", "permission": "all"}, 400, "permission"),
        ({"name": "ok", "host": "nowhere"}, 400, "host"), ({"name": "ok", "quota": -1}, 400, "quota"),
        ({"name": "ok", "quota": "lots"}, 400, "quota"), ({"name": "ok", "cloneable": "yes"}, 400, "cloneable"),
        ({"name": "ok", "colour": "red"}, 400, "colour"),
        ({"name": "0123456789abcdef0123456789abcdef"}, 400, "name"),  # reads as an id: never a name
        ({"name": "\ud800"}, 400, "body"),  # valid JSON, but not text
    ]
    for body, status, field in cases:
        code, payload = await svc.call("alice", "POST", "vfolders", body)
        assert (code, payload.get("field")) == (status, field), (body, payload)
    code, payload = await svc.call("alice", "POST", "vfolders", b"[1]".decode())  # not an object
    assert code == 400
    await ok(svc, "alice", "POST", "vfolders", {"name": "f"})
    for path, body in (("vfolders/f/mkdir", {"path": "a\udc00b"}), ("vfolders/f/move", {"src": "\ud800", "dst": "x"}),
                       ("vfolders/f/invitations", {"emails": ["\ud800@example.com"], "permission": "ro"})):
        code, payload = await svc.call("alice", "POST", path, body)
        assert code == 400 and "unpaired surrogate" in payload["message"], (path, payload)


async def test_create_rules(svc):
    await ok(svc, "alice", "POST", "vfolders", {"name": ".local"})  # dot-folders: auto-mounted
    code, p = await svc.call("alice", "POST", "vfolders", {"name": ".local"})
    assert code == 409 and p["field"] == "name"
    code, p = await svc.call("alice", "POST", "vfolders", {"name": "big", "quota": "1g"})
    assert code == 403 and "user resource policy 'upol' allows max_quota_size=64m" in p["message"]
    code, p = await svc.call("alice", "POST", "vfolders", {"name": "elsewhere", "host": "nfs"})
    assert code == 403 and "storage host 'nfs' is not allowed" in p["message"] and "allows: local" in p["message"]
    await ok(svc, "alice", "POST", "vfolders", {"name": "two"})
    await ok(svc, "alice", "POST", "vfolders", {"name": "three"})
    code, p = await svc.call("alice", "POST", "vfolders", {"name": "four"})
    assert code == 403 and p["message"] == ("user resource policy 'upol' allows max_vfolder_count=3 for user "
                                            "'alice', 3 in use")
    # the trash frees a slot; restoring checks the limit again
    await ok(svc, "alice", "DELETE", "vfolders/three")
    await ok(svc, "alice", "POST", "vfolders", {"name": "four"})
    code, p = await svc.call("alice", "POST", "vfolders/three/restore")
    assert code == 403 and "max_vfolder_count=3" in p["message"]
    # group folders: admins only, the group's policy counts
    code, p = await svc.call("alice", "POST", "vfolders", {"name": "g", "group": "ml"})
    assert code == 403 and "only superadmins and domain admins create group vfolders" in p["message"]
    code, p = await svc.call("dadmin", "POST", "vfolders", {"name": "g", "group": "ml", "domain": "other"})
    assert code == 404
    await ok(svc, "dadmin", "POST", "vfolders", {"name": "g1", "group": "ml"})
    await ok(svc, "dadmin", "POST", "vfolders", {"name": "g2", "group": "ml"})
    code, p = await svc.call("dadmin", "POST", "vfolders", {"name": "g3", "group": "ml"})
    assert code == 403 and "group resource policy 'gpol' allows max_vfolder_count=2" in p["message"]
    # bob (no user policy) has no limit and gets his keypair-policy hosts too once allowed
    await ok(svc, "bob", "POST", "vfolders", {"name": "g1"})  # same name, other owner


async def test_lists_show_own_invited_group_public_never_other_domains(svc):
    await world(svc)
    await ok(svc, "olivia", "POST", "vfolders", {"name": "mine"})
    await ok(svc, "olivia", "POST", "vfolders", {"name": "opub", "public": True})

    async def names(actor):
        return sorted((f["name"], f["via"], f["permission"]) for f in (await ok(svc, actor, "GET", "vfolders"))["items"])

    assert await names("alice") == [("mine", "owner", "wd"), ("pub", "owner", "wd"), ("shared", "group", "rw")]
    assert await names("bob") == [("mine", "invited", "ro"), ("pub", "public", "ro")]
    assert await names("carol") == [("mine", "invited", "rw"), ("pub", "public", "ro"), ("shared", "override", "ro")]
    assert await names("olivia") == [("mine", "owner", "wd"), ("opub", "owner", "wd")]
    assert await names("dadmin") == [("pub", "public", "ro"), ("shared", "admin", "wd")]


def _count_statements(engine):
    from sqlalchemy import event

    statements: list[str] = []

    def note(*a, **_k):
        statements.append(a[2])

    event.listen(engine, "before_cursor_execute", note)
    return statements, lambda: event.remove(engine, "before_cursor_execute", note)


async def test_a_users_folders_cost_the_same_however_many_others_the_domain_holds(svc):
    """Listing and naming folders reads the caller's (own, group, invited, public) in SQL, not every
    folder of the domain with a statement or more per folder: the load test's 200 users made each
    listing and each upload read all 200 folders named 'load', tens of seconds under load."""
    from backendai_hub.models import VFolder, VFolderStatus

    await world(svc)
    with svc.db.session() as s:
        bob = s.scalar(select(User).where(User.username == "bob"))
        cv = s.scalar(select(Group).where(Group.name == "cv", Group.domain_id == bob.domain_id))
        for i in range(300):
            s.add(VFolder(id=f"{i:032x}", name=f"b{i:03d}", live_name=f"b{i:03d}", owner_key=f"u:{bob.id}",
                          host="local", domain_id=bob.domain_id, user_id=bob.id))
            s.add(VFolder(id=f"{i + 1000:032x}", name=f"c{i:03d}", live_name=f"c{i:03d}", owner_key=f"g:{cv.id}",
                          host="local", domain_id=bob.domain_id, group_id=cv.id))
            s.add(VFolder(id=f"{i + 2000:032x}", name="mine", live_name=None, owner_key=f"u:{bob.id}",
                          host="local", domain_id=bob.domain_id, user_id=bob.id, status=VFolderStatus.trashed))
    statements, stop = _count_statements(svc.db.engine)
    try:
        listed = (await ok(svc, "alice", "GET", "vfolders"))["items"]
        n_list = len(statements)
        await ok(svc, "alice", "GET", "vfolders/mine")
        n_find = len(statements) - n_list
    finally:
        stop()
    assert sorted(f["name"] for f in listed) == ["mine", "pub", "shared"]
    assert n_list < 20 and n_find < 20, (n_list, n_find)
    # the narrowing hides nothing: bob's, the group's members', a domain admin's and a superadmin's views
    bob_names = {f["name"] for f in (await ok(svc, "bob", "GET", "vfolders?limit=1000"))["items"]}
    assert bob_names == {"mine", "pub"} | {f"b{i:03d}" for i in range(300)} | {f"c{i:03d}" for i in range(300)}
    assert (await ok(svc, "bob", "GET", "vfolders?trash=true"))["total"] == 300
    assert (await ok(svc, "dadmin", "GET", "vfolders"))["total"] == 300 + 2  # cv's, shared, pub
    assert (await ok(svc, "root", "GET", "vfolders"))["total"] == 300 + 2


async def test_rename_share_leave_kick_and_invitations(svc):
    await world(svc)
    code, p = await svc.call("alice", "PATCH", "vfolders/mine", {"name": "pub"})
    assert code == 409 and p["field"] == "name"
    await ok(svc, "alice", "PATCH", "vfolders/mine", {"name": "renamed"})
    assert (await ok(svc, "bob", "GET", "vfolders/renamed"))["via"] == "invited"
    # carol's override on the group folder, then unshare back to the group's permission
    assert (await ok(svc, "carol", "GET", "vfolders/shared"))["permission"] == "ro"
    await ok(svc, "dadmin", "POST", "vfolders/shared/unshare", {"users": ["carol"]})
    assert (await ok(svc, "carol", "GET", "vfolders/shared"))["permission"] == "rw"
    # leave and kick
    await ok(svc, "bob", "POST", "vfolders/renamed/leave")
    assert (await svc.call("bob", "GET", "vfolders/renamed"))[0] == 404
    await ok(svc, "alice", "DELETE", "vfolders/renamed/collaborators/carol")
    assert (await svc.call("carol", "GET", "vfolders/renamed"))[0] == 404
    code, p = await svc.call("alice", "DELETE", "vfolders/renamed/collaborators/carol")
    assert code == 404 and "not a collaborator" in p["message"]
    # reject, cancel, answer twice, someone else's invitation
    invs = (await ok(svc, "alice", "POST", "vfolders/renamed/invitations",
                     {"emails": ["bob@example.com", "mia@example.com"], "permission": "wd"}))["items"]
    by = {i["invitee"]: i["id"] for i in invs}
    assert [i["id"] for i in (await ok(svc, "alice", "GET", "vfolder-invitations"))["outgoing"]] == [by["bob"], by["mia"]]
    code, p = await svc.call("mia", "POST", f"vfolder-invitations/{by['bob']}/accept")
    assert code == 404
    code, p = await svc.call("alice", "POST", f"vfolder-invitations/{by['bob']}/accept")
    assert code == 403 and "only the invitee" in p["message"]
    await ok(svc, "bob", "POST", f"vfolder-invitations/{by['bob']}/reject")
    code, p = await svc.call("bob", "POST", f"vfolder-invitations/{by['bob']}/accept")
    assert code == 409 and "already rejected" in p["message"]
    await ok(svc, "alice", "DELETE", f"vfolder-invitations/{by['mia']}")
    assert (await ok(svc, "mia", "GET", "vfolder-invitations"))["incoming"] == []
    assert (await svc.call("mia", "GET", "vfolders/renamed"))[0] == 404


async def test_files_and_unsafe_paths(svc):
    await ok(svc, "alice", "POST", "vfolders", {"name": "mine"})
    await ok(svc, "alice", "POST", "vfolders/mine/mkdir", {"path": "a/b/c", "parents": True})
    code, p = await svc.call("alice", "POST", "vfolders/mine/mkdir", {"path": "a/b"})
    assert code == 409
    await ok(svc, "alice", "POST", "vfolders/mine/move", {"src": "a/b", "dst": "moved"})
    assert [e["name"] for e in (await ok(svc, "alice", "GET", "vfolders/mine/files?path=moved"))["items"]] == ["c"]
    code, p = await svc.call("alice", "POST", "vfolders/mine/move", {"src": "a", "dst": "a/inside"})
    assert code == 400 and p["field"] == "dst"
    code, p = await svc.call("alice", "DELETE", "vfolders/mine/files?path=moved")
    assert code == 409 and "recursive=true" in p["message"]
    await ok(svc, "alice", "DELETE", "vfolders/mine/files?path=moved&recursive=true")
    # a link a session made that points outside the folder
    vfid = (await ok(svc, "alice", "GET", "vfolders/mine"))["id"]
    root = svc.storage.path("local", vfid)
    os.symlink("/etc", os.path.join(root, "etc-link"))
    for method, path, body, field in [
        ("GET", "vfolders/mine/files?path=../../..", None, "path"),
        ("GET", "vfolders/mine/files?path=/etc", None, "path"),
        ("GET", "vfolders/mine/files?path=etc-link", None, "path"),
        ("GET", "vfolders/mine/files?path=a%252f..%252f..", None, "path"),
        ("GET", "vfolders/mine/download?path=etc-link/passwd", None, "path"),
        ("POST", "vfolders/mine/mkdir", {"path": "etc-link/x"}, "path"),
        ("POST", "vfolders/mine/mkdir", {"path": ".upload/x", "parents": True}, "path"),
        ("GET", "vfolders/mine/files?path=.upload", None, "path"),
        ("GET", "vfolders/mine/download?path=.upload/x.json", None, "path"),
        ("POST", "vfolders/mine/move", {"src": "a", "dst": "etc-link/a"}, "dst"),
        ("POST", "vfolders/mine/move", {"src": "../x", "dst": "y"}, "src"),
        ("DELETE", "vfolders/mine/files?path=etc-link/passwd", None, "path"),
    ]:
        code, p = await svc.call("alice", method, path, body)
        assert code == 400 and p["field"] == field, (method, path, code, p)
    await ok(svc, "alice", "DELETE", "vfolders/mine/files?path=etc-link")  # the link itself goes
    assert os.path.exists("/etc/passwd")


async def test_delete_is_refused_while_mounted_then_trash_restore_purge(svc):
    await ok(svc, "alice", "POST", "vfolders", {"name": "data"})
    await ok(svc, "alice", "POST", "vfolders", {"name": ".local"})
    with svc.db.session() as s:
        alice = s.scalar(select(User).where(User.username == "alice"))
        kp = s.scalar(select(KeyPair).where(KeyPair.user_id == alice.id))
        ml = s.scalar(select(Group).where(Group.name == "ml", Group.domain_id == alice.domain_id))
        k = KernelSession(user=alice, server_name="", keypair=kp, group=ml, domain_id=alice.domain_id,
                          image="img", slots={}, allocation={}, status=SessionStatus.running)
        s.add(k)
        s.flush()
        mounts = session_mounts(s, svc.storage, "alice", ["data"], session_id=k.id)
        sid = k.id
    assert [(m.target, m.read_only) for m in mounts] == [("/home/work/.local", False), ("/home/work/data", False)]
    info = await ok(svc, "alice", "GET", "vfolders/data")
    assert info["mounted"] and info["mounted_in"][0]["session_id"] == sid
    code, p = await svc.call("alice", "DELETE", "vfolders/data")
    assert code == 409 and "mounted in 1 running session(s)" in p["message"]
    with svc.db.session() as s:
        s.get(KernelSession, sid).status = SessionStatus.terminated
    await ok(svc, "alice", "DELETE", "vfolders/data")
    assert (await svc.call("alice", "GET", "vfolders/data/files"))[0] == 409  # in the trash
    await ok(svc, "alice", "POST", "vfolders", {"name": "data"})  # the name is free again
    code, p = await svc.call("alice", "POST", f"vfolders/{(await ok(svc, 'alice', 'GET', 'vfolders?trash=1'))['items'][0]['id']}/restore")
    assert code == 409 and "already exists again" in p["message"]
    trashed = (await ok(svc, "alice", "GET", "vfolders?trash=1"))["items"][0]
    path = svc.storage.path("local", trashed["id"])
    assert os.path.isdir(path)
    await ok(svc, "alice", "POST", f"vfolders/{trashed['id']}/purge")
    assert not os.path.exists(path)
    assert (await ok(svc, "alice", "GET", "vfolders?trash=1"))["items"] == []


async def test_storage_host_permissions_limit_each_operation(svc):
    """A host granting only some permissions: each operation needs its own, the union over the levels counts."""
    await ok(svc, "alice", "POST", "vfolders", {"name": "kept"})
    await ok(svc, "alice", "POST", "vfolders", {"name": ".dot"})
    await ok(svc, "alice", "POST", "vfolders/kept/mkdir", {"path": "d"})
    # the domain now grants on 'local' only creating, mounting and downloading; keypair policies grant nothing there
    await ok(svc, "root", "PATCH", "domains/default",
             {"allowed_vfolder_hosts": {"local": ["create-vfolder", "download-file"]}})
    hosts = {h["name"]: h for h in (await ok(svc, "alice", "GET", "vfolder-hosts"))["items"]}
    assert hosts["local"]["permissions"] == ["create-vfolder", "download-file"] and hosts["local"]["allowed"]
    await ok(svc, "alice", "POST", "vfolders", {"name": "new"})
    assert (await svc.call("alice", "GET", "vfolders/kept/download?path=d&archive=tar"))[0] == 200
    refused = [
        ("PATCH", "vfolders/kept", {"name": "renamed"}, "modify-vfolder"),
        ("DELETE", "vfolders/kept", None, "delete-vfolder"),
        ("POST", "vfolders/kept/invitations", {"emails": ["bob@example.com"], "permission": "ro"}, "invite-others"),
        ("POST", "vfolders/kept/uploads?path=x.bin", None, "upload-file"),
    ]
    for method, path, body, perm in refused:
        code, p = await svc.call("alice", method, path, body, headers={"Upload-Length": "1"})
        assert code == 403 and f"storage host 'local' does not grant {perm!r} to 'alice'" in p["message"], (path, p)
    # what the folder's own permission governs (mkdir, list) still works
    await ok(svc, "alice", "POST", "vfolders/kept/mkdir", {"path": "e"})
    # a session may not mount it: refused by name; the dot-folder is left out, not an error
    with svc.db.session() as s:
        with pytest.raises(Forbidden, match="does not grant 'mount-in-session'"):
            session_mounts(s, svc.storage, "alice", ["kept"])
        assert session_mounts(s, svc.storage, "alice", []) == []
        # a deactivated keypair's policy grants nothing, even to a session started with a hub token
        from backendai_hub import tenancy as T

        T.policies.create(s, "keypair", {"name": "full-local", "allowed_vfolder_hosts": ["local"]})
        T.keypairs.issue(s, svc.db.secrets, {"user": "alice", "resource_policy": "full-local", "is_active": False})
        with pytest.raises(Forbidden, match="does not grant 'mount-in-session'"):
            session_mounts(s, svc.storage, "alice", ["kept"])
    # a group's grant adds to the domain's: ml (alice's group) grants everything on 'local'
    await ok(svc, "root", "PATCH", "groups/default/ml", {"allowed_vfolder_hosts": ["local"]})
    await ok(svc, "alice", "PATCH", "vfolders/kept", {"name": "renamed"})
    with svc.db.session() as s:
        assert [m.name for m in session_mounts(s, svc.storage, "alice", ["renamed"])] == [".dot", "renamed"]
    # and a host no level lists is not allowed at all
    code, p = await svc.call("alice", "POST", "vfolders", {"name": "n2", "host": "nfs"})
    assert code == 403 and "storage host 'nfs' is not allowed for 'alice'" in p["message"], p


async def wait_task(svc, actor, task_id, timeout=30.0):
    """Poll a clone's task as a client would, until it ends; returns every state seen."""
    import asyncio
    import time

    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = await ok(svc, actor, "GET", f"tasks/{task_id}")
        seen.append(task)
        if task["status"] != "running":
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} still running after {timeout}s: {seen[-1]}")


async def test_clone_runs_in_the_background_with_progress(svc):
    await ok(svc, "alice", "POST", "vfolders", {"name": "src", "cloneable": True})
    root = svc.storage.path("local", (await ok(svc, "alice", "GET", "vfolders/src"))["id"])
    os.makedirs(os.path.join(root, "sub"))
    blobs = {"a.bin": os.urandom(3 << 20), "sub/b.bin": os.urandom(1 << 20), "sub/c.txt": b"c"}
    for rel, data in blobs.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
    await ok(svc, "carol", "POST", "vfolders/src/clone", {"name": "copy"}, status=404)  # not shared with carol
    started = await ok(svc, "alice", "POST", "vfolders/src/clone", {"name": "copy"}, status=202)
    assert started["status"] == "cloning" and started["name"] == "copy"
    task = started["task"]
    assert (task["total_bytes"], task["total_files"]) == (sum(map(len, blobs.values())), 3)
    # nobody else may watch it
    assert (await svc.call("bob", "GET", f"tasks/{task['id']}"))[0] == 404
    seen = await wait_task(svc, "alice", task["id"])
    done = seen[-1]
    assert done["status"] == "done" and "cloned into 'copy'" in done["message"]
    assert (done["copied_bytes"], done["copied_files"]) == (task["total_bytes"], 3)
    info = await ok(svc, "alice", "GET", "vfolders/copy")
    assert info["status"] == "ready" and info["file_count"] == 3
    copy_root = svc.storage.path("local", info["id"])
    for rel, data in blobs.items():
        assert open(os.path.join(copy_root, rel), "rb").read() == data


async def test_a_failed_clone_leaves_nothing_behind(svc):
    await ok(svc, "alice", "POST", "vfolders", {"name": "odd", "cloneable": True})
    root = svc.storage.path("local", (await ok(svc, "alice", "GET", "vfolders/odd"))["id"])
    open(os.path.join(root, "plain.txt"), "w").write("x")
    os.mkfifo(os.path.join(root, "pipe"))  # a named pipe cannot be copied
    started = await ok(svc, "alice", "POST", "vfolders/odd/clone", {"name": "odd-copy"}, status=202)
    done = (await wait_task(svc, "alice", started["task"]["id"]))[-1]
    assert done["status"] == "failed" and "cloning vfolder 'odd' failed" in done["message"] and "pipe" in done["message"]
    assert (await svc.call("alice", "GET", "vfolders/odd-copy"))[0] == 404
    assert not os.path.exists(svc.storage.path("local", started["id"]))
    # the name is free: the same clone works once the pipe is gone
    os.unlink(os.path.join(root, "pipe"))
    again = await ok(svc, "alice", "POST", "vfolders/odd/clone", {"name": "odd-copy"}, status=202)
    assert (await wait_task(svc, "alice", again["task"]["id"]))[-1]["status"] == "done"


async def test_clones_cut_short_by_a_service_stop_are_removed_at_start(svc):
    from backendai_hub.models import VFolder, VFolderStatus

    await ok(svc, "alice", "POST", "vfolders", {"name": "half"})
    vfid = (await ok(svc, "alice", "GET", "vfolders/half"))["id"]
    with svc.db.session() as s:
        s.get(VFolder, vfid).status = VFolderStatus.cloning  # what a stop mid-copy leaves
    code, p = await svc.call("alice", "POST", "vfolders/half/mkdir", {"path": "d"})
    assert code == 409 and "is being cloned" in p["message"]
    from backendai_hub.service.app import recover

    assert recover(svc.app) == ["half"]  # what the service's main() does before it listens
    assert (await svc.call("alice", "GET", "vfolders/half"))[0] == 404
    assert not os.path.exists(svc.storage.path("local", vfid))


async def test_the_quota_scope_caps_the_total_of_an_owners_folders(svc):
    """upol: at most 64m per folder, and now at most 40m over all of alice's folders."""
    await ok(svc, "root", "PATCH", "resource-policies/user/upol", {"max_quota_scope_size": "40m"})
    a = await ok(svc, "alice", "POST", "vfolders", {"name": "a", "quota": "24m"})
    b = await ok(svc, "alice", "POST", "vfolders", {"name": "b"})  # no quota asked: what is left
    assert (a["quota"], b["quota"]) == (24 << 20, 16 << 20)
    code, p = await svc.call("alice", "POST", "vfolders", {"name": "c"})
    assert code == 403 and ("allows max_quota_scope_size=40m for user 'alice': 40m allotted to its vfolders "
                            "(a 24m, b 16m), 0 left") in p["message"], p
    code, p = await svc.call("alice", "PATCH", "vfolders/a", {"quota": "30m"})
    assert code == 403 and "16m allotted to its vfolders (b 16m), 24m left, 30m asked" in p["message"], p
    await ok(svc, "alice", "PATCH", "vfolders/a", {"quota": "20m"})  # shrinking is within the scope
    await ok(svc, "alice", "DELETE", "vfolders/b")  # the trash still holds its space
    assert (await svc.call("alice", "POST", "vfolders", {"name": "c", "quota": "8m"}))[0] == 403
    await ok(svc, "alice", "POST", f"vfolders/{b['id']}/purge")
    c = await ok(svc, "alice", "POST", "vfolders", {"name": "c", "quota": "8m"})
    assert c["quota"] == 8 << 20
    # a clone takes its quota from the same scope
    code, p = await svc.call("alice", "POST", "vfolders/a/clone", {"name": "a2", "quota": "16m"})
    assert code == 403 and "28m allotted" in p["message"], p
    assert (await svc.call("alice", "POST", "vfolders/a/clone", {"name": "a2", "quota": "12m"}))[0] == 202
