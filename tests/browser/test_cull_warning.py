"""The culler's warning in a real session: a session past its keypair policy's max lifetime shows a
JupyterLab notification (when and why) and a banner in its open terminal before it is stopped, and the
stop is in the audit log with its reason."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from tests.browser.test_signin import browser, sign_in  # noqa: F401 - the fixture
from tests.hubproc import admin_token, hub_api, hub_fixture, hub_token, run_cli, server_path, service_api, \
    stop_server, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.browser]

LIFETIME, WARNING = 75, 40
hub = hub_fixture("cullwarn", BACKENDAI_HUB_CULL_INTERVAL="2", BACKENDAI_HUB_CULL_WARNING=str(WARNING))
SMALL = {"cpu": 1, "mem": "1g"}
SHOTS = Path(os.environ.get("BACKENDAI_HUB_SCREENSHOTS", "/tmp/bhub-screenshots"))
REASON = f"max session lifetime of {LIFETIME} s reached"


class TerminalReader(threading.Thread):
    """Reads a terminal's screen (its websocket's stdout messages) until told to stop."""

    def __init__(self, hub, token: str, name: str):
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{hub.port}/user/demo/terminals/websocket/{name}"
        self.token, self.text, self.done = token, "", threading.Event()
        self.connected = threading.Event()
        self.banner_at: float | None = None  # when the warning's banner reached the screen (monotonic)

    def run(self):
        asyncio.run(self._read())

    async def _read(self):
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        ws = await websocket_connect(HTTPRequest(self.url, headers={"Authorization": f"token {self.token}"}))
        self.connected.set()
        while not self.done.is_set():
            try:
                msg = await asyncio.wait_for(ws.read_message(), 0.5)
            except asyncio.TimeoutError:
                continue
            if msg is None:
                return  # the server went away
            kind, *data = json.loads(msg)
            if kind == "stdout":
                self.text += data[0]
                if self.banner_at is None and "will be stopped at" in self.text:
                    self.banner_at = time.monotonic()
        ws.close()


def _servers(hub, admin) -> dict:
    return hub_api(hub, admin, "GET", "users/demo").json()["servers"]


def test_the_culling_warning_appears_before_the_stop(browser, hub):  # noqa: F811
    admin = admin_token(hub)
    demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
    assert run_cli(hub, "policy", "create", "short", "--max-lifetime", str(LIFETIME)).returncode == 0
    issued = json.loads(run_cli(hub, "-o", "json", "keypair", "issue", "demo", "--policy", "short").stdout)
    r = run_cli(hub, "user", "update", "demo", "--main-keypair", issued["access_key"])
    assert r.returncode == 0, r.stderr
    assert hub_api(hub, demo, "POST", server_path("demo"), json={"resources": SMALL}).status_code in (201, 202)
    wait_ready(hub, demo)
    reader = None
    try:
        # a terminal open in the session, read through its websocket
        r = requests.post(f"{hub.url}/user/demo/api/terminals", headers={"Authorization": f"token {demo}"},
                          timeout=30)
        assert r.status_code == 200, r.text
        reader = TerminalReader(hub, demo, r.json()["name"])
        reader.start()
        assert reader.connected.wait(30)

        page = sign_in(browser, hub, "demo", hub.credentials["demo"]["password"])
        page.set_default_timeout(90_000)
        page.goto(f"{hub.url}/user/demo/lab")
        page.wait_for_selector(".jp-LabShell")
        toast = page.locator(".Toastify__toast", has_text="This session stops at")
        toast.wait_for(state="visible", timeout=(LIFETIME + 30) * 1000)
        assert _servers(hub, admin).get("", {}).get("ready"), "the server stopped before its warning showed"
        text = toast.inner_text()
        assert REASON in text and text.rstrip().endswith("Save your work."), text  # whole, not cut
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(1500)  # the toast slides in
        page.screenshot(path=str(SHOTS / "cull-warning.png"))
        toast.screenshot(path=str(SHOTS / "cull-warning-toast.png"))

        # the terminal got the banner too, with the same reason
        deadline = time.monotonic() + 15
        while "will be stopped at" not in reader.text and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "backendai-hub: this session will be stopped at" in reader.text and REASON in reader.text, \
            reader.text[-500:]

        # then the stop: no sooner than the warning's lead time after the warning came
        deadline = time.monotonic() + WARNING + 60
        while "" in _servers(hub, admin) and time.monotonic() < deadline:
            time.sleep(0.5)
        stopped = time.monotonic()
        assert "" not in _servers(hub, admin), "the session was not stopped"
        assert stopped - reader.banner_at >= WARNING - 2, (reader.banner_at, stopped)
        page.context.close()
    finally:
        if reader is not None:
            reader.done.set()
        stop_server(hub, admin, "demo")

    rows = service_api(hub, admin, "GET", "audit-logs?entity_type=session&operation=cull").json()["items"]
    assert [(x["source"], x["description"]) for x in rows if x["entity_id"].startswith("demo/")] == [
        ("service", REASON)], rows
    assert datetime.fromisoformat(rows[0]["created_at"].replace("Z", "+00:00")) <= datetime.now(timezone.utc)


def test_the_sessions_user_can_neither_plan_nor_call_off_a_stop(hub):
    """Only a hub service may set the planned stop: the session's owner (or an admin user) faking a
    warning, or clearing the real one, is a 403 naming the rule."""
    admin = admin_token(hub)
    demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
    assert hub_api(hub, demo, "POST", server_path("demo"), json={"resources": SMALL}).status_code in (201, 202)
    wait_ready(hub, demo)
    try:
        url = f"{hub.url}/user/demo/backendai-hub/cull"
        fake = {"stop_at": "2030-01-01T00:00:00Z", "reason": "a fake"}
        for token in (demo, admin):
            for body in (fake, {"stop_at": None}):
                r = requests.put(url, json=body, headers={"Authorization": f"token {token}"}, timeout=30)
                assert r.status_code == 403 and r.json()["rule"] == "hub-service-only", r.text
        r = requests.get(url, headers={"Authorization": f"token {demo}"}, timeout=30)
        assert r.status_code == 200 and r.json()["reason"] != "a fake", r.text
    finally:
        stop_server(hub, admin, "demo")


async def _run_cell_and_leave(hub, token: str, kernel_id: str, code: str) -> None:
    """Send one cell to a kernel over its websocket, wait until the kernel says it is busy, and hang up
    (the cell goes on running; no traffic through the proxy keeps the session looking active)."""
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(HTTPRequest(
        f"ws://127.0.0.1:{hub.port}/user/demo/api/kernels/{kernel_id}/channels",
        headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "demo", "session": uuid.uuid4().hex, "date": "",
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = json.loads(await asyncio.wait_for(ws.read_message(), 60))
        if (msg.get("msg_type") == "status" and msg["content"].get("execution_state") == "busy"
                and msg.get("parent_header", {}).get("msg_id") == msg_id):
            break
    ws.close()


def _in_thread(coro) -> None:
    """Run a coroutine to its end on a thread of its own (this thread's loop belongs to Playwright)."""
    failed: list[BaseException] = []

    def run():
        try:
            asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            failed.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "the kernel websocket did not finish"
    if failed:
        raise failed[0]


def test_a_busy_kernel_keeps_an_idle_looking_session_unwarned(hub):
    """A long cell with no output: nothing reaches the hub or the proxy, yet the kernel is busy, so the
    idle timeout plans no stop; once the cell ends, the session is idle and its warning comes."""
    admin = admin_token(hub)
    demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
    assert run_cli(hub, "policy", "create", "idle15", "--idle-timeout", "15").returncode == 0
    issued = json.loads(run_cli(hub, "-o", "json", "keypair", "issue", "demo", "--policy", "idle15").stdout)
    assert run_cli(hub, "user", "update", "demo", "--main-keypair", issued["access_key"]).returncode == 0
    assert hub_api(hub, demo, "POST", server_path("demo"), json={"resources": SMALL}).status_code in (201, 202)
    wait_ready(hub, demo)
    base, auth = f"{hub.url}/user/demo", {"Authorization": f"token {demo}"}

    def planned():
        r = requests.get(f"{base}/backendai-hub/cull", headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    try:
        r = requests.post(f"{base}/api/kernels", json={"name": "python3"}, headers=auth, timeout=60)
        assert r.status_code == 201, r.text
        kid = r.json()["id"]
        _in_thread(_run_cell_and_leave(hub, demo, kid, "import time; time.sleep(60)"))
        seen = time.monotonic() + 60  # the window starts once the cell runs (a loaded machine starts it late)
        while time.monotonic() < seen:
            k = requests.get(f"{base}/api/kernels/{kid}", headers=auth, timeout=30)
            if k.status_code == 200 and k.json().get("execution_state") == "busy":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the cell never ran")
        busy_until = time.monotonic() + 35
        while time.monotonic() < busy_until:  # well past the 15 s idle timeout, the cell still running
            assert planned()["stop_at"] is None, planned()
            assert _servers(hub, admin).get("", {}).get("ready"), "the session was stopped while its kernel ran"
            time.sleep(2)
        deadline = time.monotonic() + 90  # the cell ends (in about 25 s); 15 s later the session is idle
        while planned()["stop_at"] is None and time.monotonic() < deadline:
            time.sleep(1)
        assert planned()["reason"] == "idle for more than 15 s", planned()
    finally:
        stop_server(hub, admin, "demo")
