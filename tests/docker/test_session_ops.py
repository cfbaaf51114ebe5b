"""Session operations on real sessions: ping (the engine's view and the server's answer), stop through the
service, the CLI (remote and local) and the official client (`ps`, `session info`, `session destroy`)."""

import json
import os
import subprocess
import sys

import pytest

from tests.hubproc import REPO, hub_api, hub_fixture, run_cli, server_path, service_api, session_container, wait_ready

pytestmark = pytest.mark.docker

hub = hub_fixture("sessionops")
SMALL = {"resources": {"cpu": 1, "mem": "512m"}}


def remote_cli(hub, who, *args):
    c = hub.credentials[who]
    env = {**os.environ, "BACKEND_ENDPOINT": f"{hub.url}/services/backendai", "BACKEND_ACCESS_KEY": c["access_key"],
           "BACKEND_SECRET_KEY": c["secret_key"]}
    env.pop("BACKENDAI_HUB_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "backendai_hub.cli", *args], text=True, capture_output=True,
                          env=env, cwd=REPO, timeout=120)


def official(exe, hub, tmp_path, who, *args):
    c = hub.credentials[who]
    env = {"PATH": f"{exe.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "BACKEND_ENDPOINT": f"{hub.url}/services/backendai", "BACKEND_ENDPOINT_TYPE": "api",
           "BACKEND_ACCESS_KEY": c["access_key"], "BACKEND_SECRET_KEY": c["secret_key"]}
    r = subprocess.run([str(exe), *args], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def live(hub, token, user="demo") -> dict:
    r = service_api(hub, token, "GET", f"sessions?user={user}")
    assert r.status_code == 200, r.text
    return {s["name"]: s for s in r.json()["items"]}


def test_ping_stop_and_the_official_client_on_real_sessions(hub, tokens, backend_ai_cli, tmp_path):
    admin, demo = tokens["admin"], tokens["demo"]
    for name in ("", "two"):
        r = hub_api(hub, demo, "POST", server_path("demo", name), json=SMALL)
        assert r.status_code in (201, 202), r.text
    for name in ("", "two"):
        wait_ready(hub, demo, "demo", name)
    sessions = live(hub, demo)
    assert set(sessions) == {"default", "two"} and all(s["status"] == "running" for s in sessions.values())
    default, two = sessions["default"], sessions["two"]
    assert default["container_id"] == session_container(hub, "demo", "").id

    # ping: the engine says running, the server answers its /api at the container's address
    r = service_api(hub, demo, "GET", f"sessions/{default['id']}/ping")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["alive"] and got["container"]["state"] == "running" and got["container"]["running"]
    assert got["server"]["answering"] and got["server"]["status"] == 200 and got["server"]["version"]
    assert got["server"]["url"].endswith("/user/demo/api")
    out = remote_cli(hub, "demo", "session", "ping", str(two["id"]))
    assert out.returncode == 0 and "container" in out.stdout and "answering (HTTP 200" in out.stdout, out.stderr
    out = run_cli(hub, "-o", "json", "session", "ping", str(two["id"]))  # local: the engine and the server directly
    assert out.returncode == 0 and json.loads(out.stdout)["alive"], out.stderr

    # the official client: its own sessions, by name
    code, text = official(backend_ai_cli, hub, tmp_path, "demo", "--output", "json", "ps")
    assert code == 0, text
    listed = {i["name"]: i for i in json.loads(text)["items"]}
    assert set(listed) == {"default", "two"} and {i["status"] for i in listed.values()} == {"RUNNING"}
    code, text = official(backend_ai_cli, hub, tmp_path, "demo", "--output", "json", "session", "info",
                          listed["two"]["session_id"])
    assert code == 0 and json.loads(text)["items"][0]["containers"][0]["container_id"] == two["container_id"], text
    code, text = official(backend_ai_cli, hub, tmp_path, "manager", "session", "destroy", "two")
    assert code != 0 and "404" in text  # another user's session is not theirs to name without --owner
    code, text = official(backend_ai_cli, hub, tmp_path, "demo", "session", "destroy", "two")
    assert code == 0 and "Done" in text, text
    assert "two" not in hub_api(hub, admin, "GET", "users/demo").json()["servers"]
    r = service_api(hub, demo, "GET", f"sessions/{two['id']}")
    assert r.json()["status"] == "terminated" and r.json()["status_info"] == "stopped by demo", r.text
    code, text = official(backend_ai_cli, hub, tmp_path, "demo", "session", "destroy", "two")
    assert code != 0 and "404" in text

    # a domain admin stops the default server through the REST API; the hub forgets it
    container = session_container(hub, "demo", "")
    r = service_api(hub, tokens["manager"], "DELETE", f"sessions/{default['id']}")
    assert r.status_code == 200 and r.json()["status"] == "terminated", r.text
    assert r.json()["status_info"] == "stopped by manager"
    assert "" not in hub_api(hub, admin, "GET", "users/demo").json()["servers"]
    r = service_api(hub, demo, "GET", f"sessions/{default['id']}/ping")
    assert r.status_code == 200 and not r.json()["alive"]
    assert r.json()["container"]["state"] in ("missing", "exited"), r.json()
    out = remote_cli(hub, "demo", "session", "ping", str(default["id"]))
    assert out.returncode == 1 and "not answering" in out.stdout
    r = service_api(hub, tokens["manager"], "DELETE", f"sessions/{default['id']}")
    assert r.status_code == 409 and "already terminated" in r.json()["message"]
    del container

    # both stops are in the audit log with who did them
    r = service_api(hub, admin, "GET", "audit-logs?entity_type=session&operation=stop")
    rows = [(x["actor"], x["action"], x["status"]) for x in r.json()["items"]]
    assert ("manager", "DELETE api/v1/sessions/*", "success") in rows
    assert ("demo", "DELETE session/*", "success") in rows
