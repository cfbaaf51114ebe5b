"""The service's side of the JupyterLab sidebar, on a real port and a real database: a session's server token
(the vfolder scope, filtered to its server) acts as its user and nobody else, reaches only the vfolder routes;
the overview's sections, permissions, mount state and action reasons; upload and download grants the
browser uses without the session (expiry, re-grant, another user's upload, the token never logged).

The hub itself is not running here: the service's HubOAuth answers for the test's tokens with the models
the hub would give (the real hub's scopes are checked in tests/integration/test_sidebar_hub.py)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from tornado.httpclient import HTTPRequest

from backendai_hub.models import Group, KernelSession, SessionStatus, User, VFolder, VFolderMount
from backendai_hub.scopes import SCOPE_ADMIN, SCOPE_DOMAIN_ADMIN, SCOPE_SELF, SCOPE_VFOLDERS
from backendai_hub.vfolders import lookup
from tests.integration.service_harness import service_fixtures
from tests.integration.vfolder_harness import API, PREFIX, Service

TUS = {"Tus-Resumable": "1.0.0"}
MiB = 1 << 20
OCTETS = "application/offset+octet-stream"


def session_model(user: str, server: str = "", owner: str | None = None) -> dict:
    """What the hub answers for a server token of ``user``'s server ``server`` (scopes as it expands them)."""
    return {"kind": "user", "name": user,
            "scopes": sorted({f"{SCOPE_VFOLDERS}!server={owner or user}/{server}", "access:services!service=backendai",
                              f"users:activity!user={user}", f"access:servers!server={user}/{server}",
                              "custom:backendai:code-log"})}


def hub_tokens(svc) -> None:
    """Tokens ``sess-<user>[-<server>]`` (a session's server token), ``full-<user>`` (the user's own API
    token) and ``forged-<user>`` (a model naming another user's server in its scope)."""
    hub_auth = svc.app.settings["hub_auth"]

    async def user_for_token(token, **_kw):
        kind, _, rest = token.partition("-")
        user, _, server = rest.partition("-")
        if kind == "sess":
            return session_model(user, server)
        if kind == "full":
            # all our scopes: the service gives no more than the user's role in its database
            return {"kind": "user", "name": user, "scopes": [
                SCOPE_SELF, SCOPE_ADMIN, f"{SCOPE_DOMAIN_ADMIN}!group=domain:default",
                f"{SCOPE_DOMAIN_ADMIN}!group=domain:other", "access:services!service=backendai"]}
        if kind == "forged":  # alice's token claiming bob's server: the scope's user is not the token's
            return session_model(user, "", owner="bob")
        return None

    hub_auth.user_for_token = user_for_token


async def world(svc):
    """alice: 'data' (quota 32m), 'pub' (public); bob: 'bobs' invites alice ro; ml's group folder 'team'
    (members rw); carol: 'private'."""
    hub_tokens(svc)
    for actor, body in (("alice", {"name": "data", "quota": "32m"}), ("alice", {"name": "pub", "public": True}),
                        ("bob", {"name": "bobs"}), ("carol", {"name": "private"}),
                        ("dadmin", {"name": "team", "group": "ml"})):
        code, payload = await svc.call(actor, "POST", "vfolders", body)
        assert code == 201, payload
    code, _ = await svc.call("bob", "POST", "vfolders/bobs/invitations", {"emails": ["alice@example.com"],
                                                                          "permission": "ro"})
    assert code == 201


template, svc = service_fixtures(Service, setup=world)


async def as_token(svc, token: str, method: str, path: str, body: bytes | None = None, headers=None, **kw):
    url = path if path.startswith("/") else API + path
    req = HTTPRequest(svc.base + url, method=method, body=body, allow_nonstandard_methods=True,
                      headers={"Content-Type": "application/json", **({"Authorization": f"token {token}"}
                                                                      if token else {}), **(headers or {})}, **kw)
    return await svc.client.fetch(req, raise_error=False)


async def jcall(svc, token, method, path, body=None):
    import json
    resp = await as_token(svc, token, method, path, None if body is None else json.dumps(body).encode())
    return resp.code, (json.loads(resp.body) if resp.body else None)


def by_name(overview: dict) -> dict:
    return {f["name"]: f for f in overview["folders"]}


async def test_the_overview_groups_folders_with_permissions_and_reasons(svc):
    code, inv = await jcall(svc, "sess-alice", "GET", "vfolder-invitations")
    assert code == 200 and [i["vfolder_name"] for i in inv["incoming"]] == ["bobs"]
    code, _ = await jcall(svc, "sess-alice", "POST", f"vfolder-invitations/{inv['incoming'][0]['id']}/accept", {})
    assert code == 200
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    assert code == 200, ov
    folders = by_name(ov)
    assert set(folders) == {"data", "pub", "bobs", "team"}  # never carol's private folder
    assert {n: (f["group"], f["permission"], f["owner"]) for n, f in folders.items()} == {
        "data": ("mine", "wd", "alice"), "pub": ("mine", "wd", "alice"), "bobs": ("shared", "ro", "bob"),
        "team": ("group", "rw", "ml")}
    assert folders["team"]["group_name"] == "ml" and folders["data"]["quota_bytes"] == 32 << 20
    assert folders["data"]["used_bytes"] == 0 and folders["data"]["host"] == "local"
    assert ov["me"] == {"username": "alice", "email": "alice@example.com", "domain": "default", "groups": ["ml"],
                        "server": "", "home": "/home/work"}
    mine = folders["data"]["actions"]
    assert all(mine[a]["allowed"] for a in ("rename", "delete", "invite", "kick", "clone", "upload", "download",
                                            "mount")), mine
    assert mine["share"] == {"allowed": False,
                             "reason": "vfolder 'data' is a user vfolder: invite users to it instead of sharing"}
    assert mine["leave"]["reason"] == "cannot leave vfolder 'data': you own it; delete it instead"
    ro = folders["bobs"]["actions"]
    assert ro["upload"] == {"allowed": False, "reason": "vfolder 'bobs' is ro for you (you were invited with ro): "
                                                        "write needs rw"}
    assert ro["rename"]["reason"] == "only the owner of vfolder 'bobs' may rename it"
    assert ro["leave"]["allowed"] and ro["download"]["allowed"] and ro["mount"]["allowed"]
    team = folders["team"]["actions"]
    assert team["upload"]["allowed"] and not team["delete"]["allowed"]
    assert team["delete"]["reason"] == "only superadmins and admins of domain 'default' may delete group vfolder 'team'"
    # each reason is what the action itself answers
    code, refused = await jcall(svc, "sess-alice", "PATCH", f"vfolders/{folders['bobs']['id']}", {"name": "x"})
    assert (code, refused["message"]) == (403, ro["rename"]["reason"])
    code, refused = await jcall(svc, "sess-alice", "POST", f"vfolders/{folders['bobs']['id']}/upload-grants",
                                {"path": "f", "size": 1})
    assert (code, refused["message"]) == (403, ro["upload"]["reason"])
    assert ov["usage_modes"] == ["general", "data", "model"]
    assert [h["name"] for h in ov["hosts"]] == ["local", "nfs"] and ov["can_create"]["allowed"]


async def test_the_count_limit_and_a_host_without_permission_are_named(svc):
    code, _ = await svc.call("alice", "POST", "vfolders", {"name": "third"})  # upol: max_vfolder_count=3
    assert code == 201
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    reason = "user resource policy 'upol' allows max_vfolder_count=3 for user 'alice', 3 in use"
    assert ov["can_create"] == {"allowed": False, "reason": reason}
    assert by_name(ov)["data"]["actions"]["clone"] == {"allowed": False, "reason": reason}
    with svc.db.session() as s:  # the domain grants 'local' only to mount and read now
        d = s.scalar(select(User).where(User.username == "alice")).domain
        d.allowed_vfolder_hosts = {"local": ["mount-in-session", "download-file"]}
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    data = by_name(ov)["data"]["actions"]
    assert data["mount"]["allowed"] and data["download"]["allowed"]
    assert not data["upload"]["allowed"] and "does not grant 'upload-file' to 'alice'" in data["upload"]["reason"]
    assert "does not grant 'modify-vfolder'" in data["rename"]["reason"]


@pytest.mark.parametrize("user", ["alice", "bob", "carol", "dadmin", "mia", "olivia", "root"])
async def test_the_overview_lists_what_the_vfolder_list_lists(svc, user):
    """The overview's own query (a superset the rules then sift) finds exactly the folders lookup.list_for
    finds, for every kind of user (a superadmin's list is their domain's, as everywhere)."""
    code, ov = await jcall(svc, f"full-{user}", "GET", "sidebar")
    assert code == 200, ov
    with svc.db.session() as s:
        u = s.scalar(select(User).where(User.username == user))
        from backendai_hub.service.rules import Principal
        p = Principal(username=user, role=u.role.value, domain=u.domain.name, via="token",
                      admin_domains=frozenset({u.domain.name}) if u.role.value == "domain-admin" else frozenset(),
                      groups=frozenset(g.name for g in u.groups))
        expected = sorted(vf.id for vf, _ in lookup.list_for(s, p))
    assert sorted(f["id"] for f in ov["folders"]) == expected


async def test_a_session_token_reaches_only_the_vfolder_routes_and_only_its_user(svc):
    for path in ("users", "me", "keypairs", "sessions", "resource-policies", "audit-logs"):
        code, payload = await jcall(svc, "sess-alice", "GET", path)
        assert code == 403 and "session-token" in payload["message"], (path, code, payload)
    code, payload = await jcall(svc, "sess-alice", "POST", "keypairs", {})
    assert code == 403 and "session-token" in payload["message"]
    code, _ = await jcall(svc, "full-alice", "GET", "me")  # the user's own API token is not limited so
    assert code == 200
    # alice's session token cannot reach carol's folder by id: it is alice, not a caller of its choosing
    with svc.db.session() as s:
        private = s.scalar(select(VFolder.id).where(VFolder.name == "private"))
    for method, path, body in (("GET", f"vfolders/{private}", None), ("PATCH", f"vfolders/{private}", {"name": "y"}),
                               ("DELETE", f"vfolders/{private}", None),
                               ("POST", f"vfolders/{private}/upload-grants", {"path": "f", "size": 1}),
                               ("POST", f"vfolders/{private}/download-grants", {"path": ""}),
                               ("POST", f"vfolders/{private}/invitations", {"emails": ["alice@example.com"]})):
        code, payload = await jcall(svc, "sess-alice", method, path, body)
        assert (code, payload["field"]) == (404, "vfolder"), (method, path, payload)
    code, ov = await jcall(svc, "sess-carol", "GET", "sidebar")
    assert "private" in by_name(ov)
    # a token whose vfolder scope names another user's server is no session token of either
    code, payload = await jcall(svc, "forged-alice", "GET", "sidebar")
    assert code == 401, payload
    code, payload = await jcall(svc, "sess-alice", "POST", "sidebar/restart", {"vfolders": ["data"], "server": "x"})
    assert (code, payload["field"]) == (400, "server")  # a session restarts itself only: no server field


async def test_mount_state_is_this_sessions_and_a_mounted_folder_is_not_deleted(svc):
    with svc.db.session() as s:
        u = s.scalar(select(User).where(User.username == "alice"))
        g = s.scalar(select(Group).where(Group.name == "ml"))
        vf = s.scalar(select(VFolder).where(VFolder.name == "data"))
        team = s.scalar(select(VFolder).where(VFolder.name == "team"))
        k = KernelSession(user_id=u.id, server_name="lab", access_key=u.keypairs[0].access_key, group_id=g.id,
                          domain_id=g.domain_id, image="img", status=SessionStatus.running,
                          started_at=datetime.now(timezone.utc))
        s.add(k)
        s.flush()
        s.add(VFolderMount(session_id=k.id, vfolder_id=vf.id, target="/home/work/data", read_only=False))
        s.add(VFolderMount(session_id=k.id, vfolder_id=team.id, target="/home/work/team", read_only=True))
        sid = k.id
    code, ov = await jcall(svc, "sess-alice-lab", "GET", "sidebar")
    folders = by_name(ov)
    assert ov["me"]["server"] == "lab"
    assert folders["data"]["mount"] == {"mounted": True, "path": "/home/work/data", "mode": "rw"}
    assert folders["team"]["mount"] == {"mounted": True, "path": "/home/work/team", "mode": "ro"}
    assert folders["pub"]["mount"] == {"mounted": False, "path": "/home/work/pub", "mode": None}
    assert folders["data"]["actions"]["delete"] == {
        "allowed": False, "reason": f"vfolder 'data' is mounted in 1 running session(s) ({sid}); "
                                    f"stop them before you delete it"}
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")  # alice's default server mounts nothing
    assert not any(f["mount"]["mounted"] for f in ov["folders"])
    code, ov = await jcall(svc, "sess-mia-lab", "GET", "sidebar")  # mia has no server 'lab'
    assert not by_name(ov)["team"]["mount"]["mounted"]


async def test_restart_checks_the_folders_first_and_needs_the_hub(svc):
    code, payload = await jcall(svc, "sess-alice-lab", "POST", "sidebar/restart", {"vfolders": ["data"]})
    assert (code, payload["field"]) == (409, "server") and "no running session 'lab'" in payload["message"]
    with svc.db.session() as s:
        u = s.scalar(select(User).where(User.username == "alice"))
        g = s.scalar(select(Group).where(Group.name == "ml"))
        s.add(KernelSession(user_id=u.id, server_name="lab", access_key=u.keypairs[0].access_key, group_id=g.id,
                            domain_id=g.domain_id, image="img", status=SessionStatus.running))
    for body, status, fragment in (({"vfolders": ["private"]}, 400, "no vfolder 'private' that you may mount"),
                                   ({"vfolders": []}, 400, "vfolders: must be a list"),
                                   ({"vfolders": ["../x"]}, 400, "vfolders: must be a list"),
                                   ({"vfolders": ["data"], "extra": 1}, 400, "unknown field 'extra'")):
        code, payload = await jcall(svc, "sess-alice-lab", "POST", "sidebar/restart", body)
        assert code == status and fragment in payload["message"], (body, payload)
    code, payload = await jcall(svc, "sess-alice-lab", "POST", "sidebar/restart", {"vfolders": ["data"]})
    assert code == 503 and "needs the hub's API" in payload["message"]  # no hub here (the docker tier has one)


async def upload_bytes(svc, url: str, offset: int, data: bytes, headers=None):
    return await as_token(svc, None, "PATCH", url, data, headers={**TUS, "Content-Type": OCTETS,
                                                                  "Upload-Offset": str(offset), **(headers or {})})


async def test_upload_grant_resume_regrant_and_download_without_the_session(svc, caplog):
    caplog.set_level(logging.DEBUG)
    data = os.urandom(3 << 20)
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    vfid = by_name(ov)["data"]["id"]
    code, _ = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/mkdir", {"path": "dir"})
    assert code == 201
    code, grant = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/upload-grants",
                              {"path": "dir/big.bin", "size": len(data)})
    assert code == 201, grant
    url = grant["url"]
    assert url.startswith(f"{PREFIX}folders/_/tus/upload?token=")  # a path at the hub's public address
    assert (grant["path"], grant["length"], grant["offset"]) == ("dir/big.bin", len(data), 0)
    assert datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00")) > datetime.now(timezone.utc)
    # the browser: HEAD, PATCH half (no credential but the grant), then a page reload: a fresh grant
    head = await as_token(svc, None, "HEAD", url, headers=TUS)
    assert (head.code, head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (200, "0", str(len(data)))
    half = len(data) // 2
    resp = await upload_bytes(svc, url, 0, data[:half])
    assert (resp.code, resp.headers["Upload-Offset"]) == (204, str(half))
    code, again = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/upload-grants",
                              {"upload_id": grant["upload_id"]})
    assert code == 200 and again["offset"] == half and again["url"] != url
    resp = await upload_bytes(svc, again["url"], half, data[half:])
    assert resp.code == 204
    code, dl = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/download-grants", {"path": "dir/big.bin"})
    assert code == 201 and dl["name"] == "big.bin" and not dl["directory"]
    got = await as_token(svc, None, "GET", dl["url"])
    assert got.code == 200 and hashlib.sha256(got.body).digest() == hashlib.sha256(data).digest()
    part = await as_token(svc, None, "GET", dl["url"], headers={"Range": "bytes=10-19"})
    assert (part.code, part.body) == (206, data[10:20])
    code, dl = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/download-grants", {"path": "dir"})
    assert dl["directory"] and dl["name"] == "dir.zip" and dl["url"].endswith("&archive=zip")
    got = await as_token(svc, None, "GET", dl["url"])
    assert got.code == 200 and got.body[:2] == b"PK"
    # no grant token reaches any log line
    tokens = [u.split("token=")[1].split("&")[0] for u in (url, again["url"], dl["url"])]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=%5Bredacted%5D" in logged and not any(t in logged for t in tokens)


async def test_a_large_upload_goes_as_parts_side_by_side_and_resumes_after_a_reload(svc):
    data = os.urandom(5 * MiB + 17)
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    vfid = by_name(ov)["data"]["id"]
    code, grant = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/upload-grants",
                              {"path": "big.bin", "size": len(data), "parts": 3})
    assert code == 201, grant
    parts = grant["parts"]
    # equal parts on MiB boundaries, the last shorter, covering the file; each its own URL
    assert [(p["start"], p["end"], p["offset"]) for p in parts] == [
        (0, 2 * MiB, 0), (2 * MiB, 4 * MiB, 0), (4 * MiB, len(data), 0)]
    assert len({p["url"] for p in parts}) == 3 and not grant["complete"]
    first = parts[0]
    sent = await asyncio.gather(upload_bytes(svc, parts[2]["url"], 0, data[parts[2]["start"]:]),
                                upload_bytes(svc, first["url"], 0, data[:MiB]))
    assert [r.code for r in sent] == [204, 204]
    code, listing = await svc.call("alice", "GET", f"vfolders/{vfid}/files")
    assert "big.bin" not in [f["name"] for f in listing["items"]]
    # a page reload: fresh URLs for the same parts, with where each stopped
    code, again = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/upload-grants",
                              {"upload_id": grant["upload_id"]})
    assert code == 200 and again["offset"] == MiB + len(data) - 4 * MiB
    assert [(p["upload_id"], p["offset"]) for p in again["parts"]] == [
        (parts[0]["upload_id"], MiB), (parts[1]["upload_id"], 0), (parts[2]["upload_id"], len(data) - 4 * MiB)]
    assert (await upload_bytes(svc, again["parts"][0]["url"], MiB, data[MiB:2 * MiB])).code == 204
    assert (await upload_bytes(svc, again["parts"][1]["url"], 0, data[2 * MiB:4 * MiB])).code == 204
    code, dl = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/download-grants", {"path": "big.bin"})
    got = await as_token(svc, None, "GET", dl["url"])
    assert got.code == 200 and hashlib.sha256(got.body).digest() == hashlib.sha256(data).digest()
    # small files, one part asked for, or a folder without room for joining: one URL
    for size, want in ((MiB // 2, 4), (5 * MiB, 1)):
        code, one = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/upload-grants",
                                {"path": f"f{size}{want}", "size": size, "parts": want})
        assert code == 201 and "parts" not in one, one
    code, tight = await svc.call("alice", "POST", "vfolders", {"name": "tight", "quota": "8m"})
    assert code == 201, tight
    code, one = await jcall(svc, "sess-alice", "POST", f"vfolders/{tight['id']}/upload-grants",
                            {"path": "t.bin", "size": 6 * MiB, "parts": 4})
    assert code == 201 and "parts" not in one, one  # 6 MiB of parts + the 4 MiB the join copies: more than 8
    # cancelling the upload takes every part along
    code, more = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/upload-grants",
                             {"path": "more.bin", "size": 4 * MiB, "parts": 2})
    code, _ = await jcall(svc, "sess-alice", "DELETE", f"vfolders/{vfid}/uploads/{more['upload_id']}")
    assert code == 204
    for part in more["parts"]:
        assert (await as_token(svc, None, "HEAD", part["url"], headers=TUS)).code == 404


async def test_grants_expire_bind_the_user_and_the_folder(svc):
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    team = by_name(ov)["team"]["id"]
    data_id = by_name(ov)["data"]["id"]
    svc.app.settings["upload_grant_ttl"] = 1.0
    code, grant = await jcall(svc, "sess-alice", "POST", f"vfolders/{team}/upload-grants", {"path": "t", "size": 4})
    assert code == 201
    await asyncio.sleep(1.2)
    resp = await upload_bytes(svc, grant["url"], 0, b"abcd")
    assert resp.code == 401 and b"token: expired; request a new one" in resp.body
    # carol (also rw in ml's folder) cannot take alice's upload over, nor can alice move it to another folder
    code, payload = await jcall(svc, "sess-carol", "POST", f"vfolders/{team}/upload-grants",
                                {"upload_id": grant["upload_id"]})
    assert (code, payload["field"]) == (404, "upload")
    code, payload = await jcall(svc, "sess-alice", "POST", f"vfolders/{data_id}/upload-grants",
                                {"upload_id": grant["upload_id"]})
    assert (code, payload["field"]) == (404, "upload")
    svc.app.settings["upload_grant_ttl"] = 600.0
    code, fresh = await jcall(svc, "sess-alice", "POST", f"vfolders/{team}/upload-grants",
                              {"upload_id": grant["upload_id"]})
    assert code == 200
    resp = await upload_bytes(svc, fresh["url"], 0, b"abcd")
    assert resp.code == 204
    forged = fresh["url"][:-3] + ("AAA" if not fresh["url"].endswith("AAA") else "BBB")
    resp = await upload_bytes(svc, forged, 4, b"")
    assert resp.code == 401 and b"bad signature" in resp.body
    # cancel: the upload is gone
    code, fresh2 = await jcall(svc, "sess-alice", "POST", f"vfolders/{team}/upload-grants", {"path": "u", "size": 9})
    code, _ = await jcall(svc, "sess-alice", "DELETE", f"vfolders/{team}/uploads/{fresh2['upload_id']}")
    assert code == 204
    resp = await as_token(svc, None, "HEAD", fresh2["url"], headers=TUS)
    assert resp.code == 404


@pytest.mark.parametrize("body, field", [
    ({"path": "f"}, "size"), ({"path": "f", "size": -1}, "size"), ({"path": "f", "size": True}, "size"),
    ({"path": "f", "size": 1, "overwrite": "yes"}, "overwrite"), ({"path": "f", "size": 1, "x": 1}, "x"),
    ({"path": "f", "size": 1, "parts": 0}, "parts"), ({"path": "f", "size": 1, "parts": 17}, "parts"),
    ({"path": "f", "size": 1, "parts": True}, "parts"), ({"upload_id": "nope"}, "upload_id"), ({"upload_id": "0" * 32, "path": "f"}, "path"),
    ({"path": "../f", "size": 1}, "path"), ({"path": ".upload/x", "size": 1}, "path"),
])
async def test_bad_grant_requests_name_the_field(svc, body, field):
    code, payload = await jcall(svc, "sess-alice", "POST", "vfolders/data/upload-grants", body)
    assert code == 400 and payload["field"] == field, payload


async def test_the_overview_is_a_few_statements_for_many_folders(svc):
    """1 000 folders (a user's own, a group's, invitations) are read in a bounded number of statements."""
    from sqlalchemy import event

    from backendai_hub.models import VFolderGrant, VFolderPermission
    with svc.db.session() as s:
        u = s.scalar(select(User).where(User.username == "alice"))
        bob = s.scalar(select(User).where(User.username == "bob"))
        g = s.scalar(select(Group).where(Group.name == "ml"))
        for i in range(1000):
            owner = [("u", u), ("g", g), ("b", bob)][i % 3]
            vf = VFolder(id=f"{i:032x}", name=f"f{i:04d}", live_name=f"f{i:04d}", owner_key=f"{owner[0]}:{owner[1].id}",
                         host="local", domain_id=u.domain_id, user_id=owner[1].id if owner[0] != "g" else None,
                         group_id=g.id if owner[0] == "g" else None)
            s.add(vf)
            if owner[0] == "b":
                s.add(VFolderGrant(vfolder_id=vf.id, user_id=u.id, permission=VFolderPermission.ro))
    statements = []
    engine = svc.db.engine
    listener = lambda *a, **k: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert code == 200 and len(ov["folders"]) == 1000 + 3  # and data, pub, team
    assert len(statements) < 40, len(statements)


async def test_a_domain_admins_session_shares_their_domains_group_folder(svc):
    """From a session, a domain admin manages the group folders of their domain (never tenancy)."""
    code, ov = await jcall(svc, "sess-dadmin", "GET", "sidebar")
    team = by_name(ov)["team"]
    assert team["group"] == "group" and team["actions"]["share"]["allowed"], team["actions"]["share"]
    code, payload = await jcall(svc, "sess-dadmin", "POST", f"vfolders/{team['id']}/share",
                                {"users": ["carol"], "permission": "ro"})
    assert code == 200 and {c["user"]: c["permission"] for c in payload["items"]} == {"carol": "ro"}
    code, ov = await jcall(svc, "sess-carol", "GET", "sidebar")
    assert by_name(ov)["team"]["permission"] == "ro"
    code, payload = await jcall(svc, "sess-dadmin", "GET", "users")
    assert code == 403 and "session-token" in payload["message"]


async def test_grants_point_the_browser_at_the_transfer_listener_when_there_is_one(svc):
    code, ov = await jcall(svc, "sess-alice", "GET", "sidebar")
    vfid = by_name(ov)["data"]["id"]
    svc.app.settings["transfer_public_url"] = "https://files.example.test/"  # BackendAIService.transfer_bind_url
    code, grant = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/upload-grants", {"path": "l.bin", "size": 3})
    assert code == 201 and grant["url"].startswith("https://files.example.test/folders/_/tus/upload?token=")
    code, dl = await jcall(svc, "sess-alice", "POST", f"vfolders/{vfid}/download-grants", {"path": "."})
    assert dl["url"].startswith("https://files.example.test/folders/_/tus/download?token=")
