"""Vfolders end to end: created through the service behind the real proxy, mounted by the real hub's
spawner into a jailed session at /home/work/<name> with the permission each user has."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.hubproc import hub_api, hub_fixture, server_path, service_api, session_container, stop_server, wait_ready

pytestmark = pytest.mark.docker

SMALL = {"resources": {"cpu": 1, "mem": "512m"}}

PROBE = r"""
import errno, json, os
out = {}
for name in ("data", "refs", "team", "public-ds", ".config", "drafts", "team-ro"):
    d = f"/home/work/{name}"
    try:
        with open(f"{d}/from-session.txt", "w") as f:
            f.write(f"written in {name}")
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
mounts = {line.split()[1]: line.split()[3].split(",")[0] for line in open("/proc/self/mounts")
          if line.split()[1].startswith("/home/work/")}
out["mounts"] = mounts
out["refs_listing"] = sorted(os.listdir("/home/work/refs"))
out["readme"] = open("/home/work/refs/readme.txt").read()
print(json.dumps(out))
"""


hub = hub_fixture("vfsessions")
svc = service_api  # our REST service through the hub's proxy, as a hub token's owner


def ok(r, *codes):
    assert r.status_code in (codes or (200, 201, 204)), f"{r.request.method} {r.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def upload(hub, token, folder, path, data: bytes):
    """A one-PATCH tus upload through the proxy."""
    created = ok(svc(hub, token, "POST", f"vfolders/{folder}/uploads", params={"path": path},
                     headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))}), 201)
    r = requests.patch(f"{hub.url}{created['location']}", data=data, timeout=60,
                       headers={"Authorization": f"token {token}", "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                                "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 204, r.text


def test_a_session_mounts_exactly_what_its_user_may_reach(hub, tokens):
    admin, manager, demo = tokens["admin"], tokens["manager"], tokens["demo"]
    # demo's own folders; a dot-folder comes along without being asked for
    ok(svc(hub, demo, "POST", "vfolders", json={"name": "data"}), 201)
    ok(svc(hub, demo, "POST", "vfolders", json={"name": ".config"}), 201)
    # the manager's folder, shared read-only with demo by invitation (accepted)
    ok(svc(hub, manager, "POST", "vfolders", json={"name": "refs"}), 201)
    upload(hub, manager, "refs", "readme.txt", b"read me, do not edit")
    ok(svc(hub, manager, "POST", "vfolders/refs/invitations",
           json={"emails": ["demo@example.com"], "permission": "ro"}), 201)
    incoming = ok(svc(hub, demo, "GET", "vfolder-invitations"))["incoming"]
    assert [i["vfolder_name"] for i in incoming] == ["refs"]
    ok(svc(hub, demo, "POST", f"vfolder-invitations/{incoming[0]['id']}/accept"))
    # the manager's 'drafts', shared with demo as wd (rw + delete)
    ok(svc(hub, manager, "POST", "vfolders", json={"name": "drafts"}), 201)
    ok(svc(hub, manager, "POST", "vfolders/drafts/invitations",
           json={"emails": ["demo@example.com"], "permission": "wd"}), 201)
    incoming = ok(svc(hub, demo, "GET", "vfolder-invitations"))["incoming"]
    ok(svc(hub, demo, "POST", f"vfolder-invitations/{incoming[0]['id']}/accept"))
    # folders of demo's group 'ml': one read-write for members, one where demo is overridden to ro
    ok(svc(hub, admin, "POST", "vfolders", json={"name": "team", "group": "ml", "permission": "rw"}), 201)
    ok(svc(hub, admin, "POST", "vfolders", json={"name": "team-ro", "group": "ml", "permission": "rw"}), 201)
    ok(svc(hub, admin, "POST", "vfolders/team-ro/share", json={"users": ["demo"], "permission": "ro"}))
    ok(svc(hub, admin, "POST", "vfolders", json={"name": "public-ds", "public": True}), 201)
    # something demo cannot reach: the admin's private folder
    ok(svc(hub, admin, "POST", "vfolders", json={"name": "private"}), 201)

    r = hub_api(hub, admin, "POST", server_path("demo"), json={**SMALL, "vfolders": ["data", "private"]})
    assert r.status_code in (400, 403, 404), r.text
    assert "private" in r.json()["message"]
    assert "" not in hub_api(hub, admin, "GET", "users/demo").json()["servers"]

    r = hub_api(hub, admin, "POST", server_path("demo"),
                json={**SMALL, "vfolders": ["data", "refs", "team", "public-ds", "drafts", "team-ro"]})
    assert r.status_code in (201, 202), r.text
    try:
        wait_ready(hub, admin)
        c = session_container(hub, "demo")
        result = c.exec_run(["python3", "-c", PROBE], user="1000")
        assert result.exit_code == 0, result.output.decode(errors="replace")
        out = json.loads(result.output.decode().strip().splitlines()[-1])
        assert out["mounts"] == {"/home/work/data": "rw", "/home/work/refs": "ro", "/home/work/team": "rw",
                                 "/home/work/public-ds": "ro", "/home/work/.config": "rw",
                                 "/home/work/drafts": "rw", "/home/work/team-ro": "ro"}, out
        assert (out["data"], out["team"], out[".config"], out["drafts"]) == ("ok",) * 4, out
        assert (out["refs"], out["public-ds"], out["team-ro"]) == ("EROFS",) * 3, out
        assert out["readme"] == "read me, do not edit" and out["refs_listing"] == ["readme.txt"]

        # what the session wrote is the folder's content, as its owner sees it through the API
        names = [e["name"] for e in ok(svc(hub, demo, "GET", "vfolders/data/files"))["items"]]
        assert names == ["from-session.txt"]
        got = svc(hub, demo, "GET", "vfolders/data/download", params={"path": "from-session.txt"})
        assert got.status_code == 200 and got.content == b"written in data"
        # and the group's other members (the admin created it) see it too
        team = [e["name"] for e in ok(svc(hub, admin, "GET", "vfolders/team/files"))["items"]]
        assert team == ["from-session.txt"]

        info = ok(svc(hub, demo, "GET", "vfolders/data"))
        assert info["mounted"] is True and info["mounted_in"][0]["user"] == "demo"
        r = svc(hub, demo, "DELETE", "vfolders/data")
        assert r.status_code == 409 and "mounted in 1 running session" in r.json()["message"], r.text
    finally:
        stop_server(hub, admin)
    # once the session is gone, the folder can be deleted
    ok(svc(hub, demo, "DELETE", "vfolders/data"), 200, 204)
    assert "data" not in [f["name"] for f in ok(svc(hub, demo, "GET", "vfolders"))["items"]]


def test_a_kicked_collaborators_running_session_is_stopped_with_the_reason(hub, tokens):
    """A bind mount cannot be taken back from a running container: kicking stops the session."""
    admin, manager, demo = tokens["admin"], tokens["manager"], tokens["demo"]
    ok(svc(hub, manager, "POST", "vfolders", json={"name": "kickme"}), 201)
    ok(svc(hub, manager, "POST", "vfolders/kickme/invitations",
           json={"emails": ["demo@example.com"], "permission": "ro"}), 201)
    incoming = ok(svc(hub, demo, "GET", "vfolder-invitations"))["incoming"]
    ok(svc(hub, demo, "POST", f"vfolder-invitations/{incoming[0]['id']}/accept"))
    r = hub_api(hub, admin, "POST", server_path("demo", "kicked"), json={**SMALL, "vfolders": ["kickme"]})
    assert r.status_code in (201, 202), r.text
    try:
        wait_ready(hub, admin, name="kicked")
        assert session_container(hub, "demo", "kicked").exec_run(["ls", "/home/work/kickme"], user="1000").exit_code == 0
        ok(svc(hub, manager, "DELETE", "vfolders/kickme/collaborators/demo"))
        deadline = time.monotonic() + 60  # the service asks the hub at once; the stop itself takes seconds
        while "kicked" in hub_api(hub, admin, "GET", "users/demo").json()["servers"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "kicked" not in hub_api(hub, admin, "GET", "users/demo").json()["servers"]
        ended = ok(svc(hub, admin, "GET", "sessions", params={"status": "terminated", "user": "demo"}))["items"]
        assert [s["status_info"] for s in ended if s["server_name"] == "kicked"] == [
            "access to vfolder 'kickme' was revoked"]
    finally:
        stop_server(hub, admin, name="kicked")
