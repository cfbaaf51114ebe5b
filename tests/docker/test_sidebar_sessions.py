"""The sidebar's server side in a real session: the real hub gives the server its token, the image's server
extension forwards to the service behind the real proxy with it, grants let the browser upload and
download through the proxy without the session, and a restart brings the session back with a folder
mounted at /home/work/<name>."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from tests.hubproc import hub_api, hub_fixture, server_path, service_api, session_container, stop_server, wait_ready

pytestmark = pytest.mark.docker

SMALL = {"resources": {"cpu": 1, "mem": "512m"}}

hub = hub_fixture("sidebar")


def ok(r, *codes):
    assert r.status_code in (codes or (200, 201, 202, 204)), f"{r.request.method} {r.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def container_env(c) -> dict:
    return dict(e.split("=", 1) for e in c.attrs["Config"]["Env"] if "=" in e)


def test_the_sidebar_api_in_a_real_session(hub, tokens):
    demo = tokens["demo"]
    proj = ok(service_api(hub, demo, "POST", "vfolders", json={"name": "proj"}), 201)
    ok(hub_api(hub, demo, "POST", server_path("demo"), json=SMALL), 201, 202)
    wait_ready(hub, demo)
    ext = f"{hub.url}/user/demo/backendai-hub/api/"
    as_demo = {"Authorization": f"token {demo}"}  # the browser's credential for its own server
    try:
        overview = ok(requests.get(ext + "folders", headers=as_demo, timeout=30))
        assert overview["me"]["username"] == "demo" and overview["me"]["server"] == ""
        mine = {f["name"]: f for f in overview["folders"]}["proj"]
        assert mine["mount"] == {"mounted": False, "path": "/home/work/proj", "mode": None, "browser_path": "proj"}
        assert mine["actions"]["mount"]["allowed"] and mine["actions"]["upload"]["allowed"]

        # the server's own token, as the hub made it: this user's vfolder API from this server, nothing else
        c = session_container(hub, "demo")
        env = container_env(c)
        assert env["BACKENDAI_HUB_SERVICE_URL"].endswith("/services/backendai/")
        own = env["JUPYTERHUB_API_TOKEN"]
        r = service_api(hub, own, "GET", "users")
        assert r.status_code == 403 and "session-token" in r.json()["message"]
        assert ok(service_api(hub, own, "GET", "sidebar"))["me"] == overview["me"]
        assert service_api(hub, tokens["manager"], "GET", f"vfolders/{proj['id']}").status_code == 404

        # an upload the browser sends to the hub's proxy itself, with the grant the extension got
        data = os.urandom(4 << 20)
        grant = ok(requests.post(ext + f"folders/{proj['id']}/uploads", json={"path": "big.bin", "size": len(data)},
                                 headers=as_demo, timeout=30), 201)
        assert grant["url"].startswith("/services/backendai/folders/_/tus/upload?token=")
        tus = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
        half = len(data) // 2
        assert requests.patch(hub.url + grant["url"], data=data[:half], headers={**tus, "Upload-Offset": "0"},
                              timeout=60).status_code == 204
        again = ok(requests.post(ext + f"folders/{proj['id']}/uploads", json={"upload_id": grant["upload_id"]},
                                 headers=as_demo, timeout=30))
        assert again["offset"] == half
        head = requests.head(hub.url + again["url"], headers={"Tus-Resumable": "1.0.0"}, timeout=30)
        assert head.headers["Upload-Offset"] == str(half)
        assert requests.patch(hub.url + again["url"], data=data[half:], headers={**tus, "Upload-Offset": str(half)},
                              timeout=60).status_code == 204
        dl = ok(requests.get(ext + f"folders/{proj['id']}/download", params={"path": "big.bin"}, headers=as_demo,
                             timeout=30))
        got = requests.get(hub.url + dl["url"], timeout=60)
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()

        # restart with the folder mounted: 202 now, then the hub stops and starts this server
        old = c.id
        answer = ok(requests.post(ext + "session/restart", json={"vfolders": [proj["id"]]}, headers=as_demo,
                                  timeout=30), 202)
        assert answer["next_url"] == "/hub/spawn-pending/demo" and answer["vfolders"] == [proj["id"]]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            spec = hub_api(hub, demo, "GET", "users/demo").json()["servers"].get("")
            if spec and spec["ready"]:
                try:
                    if session_container(hub, "demo").id != old:
                        break
                except AssertionError:  # the old one still going, or none yet
                    pass
            time.sleep(0.5)
        else:
            raise AssertionError("the session did not come back")
        c = session_container(hub, "demo")
        overview = ok(requests.get(ext + "folders", headers=as_demo, timeout=30))
        mine = {f["name"]: f for f in overview["folders"]}["proj"]
        assert mine["mount"] == {"mounted": True, "path": "/home/work/proj", "mode": "rw", "browser_path": "proj"}
        result = c.exec_run(["sha256sum", "/home/work/proj/big.bin"], user="1000")
        assert result.output.decode().split()[0] == hashlib.sha256(data).hexdigest()
        options = hub_api(hub, demo, "GET", "users/demo").json()["servers"][""]["user_options"]
        assert options["vfolders"] == [proj["id"]] and options["resources"] == SMALL["resources"]
    finally:
        stop_server(hub, demo)
