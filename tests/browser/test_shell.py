"""The web shell end to end (real engine, real proxy, real Chromium): one click on the home page opens a
terminal where the CLIs work with the session's own keys and every vfolder is mounted with its permission;
a reload finds the same tmux session; restart keeps the home, reset wipes it (never the vfolders); the
session's keypair is refused once it stops; and only the owner reaches the shell, on HTTP and websocket."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from backendai_hub import signing
from tests.browser.test_signin import browser, sign_in  # noqa: F401 - the fixture
from tests.hubproc import (admin_token, hub_api, hub_fixture, hub_token, server_path, service_api,
                           session_container, stop_server, wait_ready)

pytestmark = [pytest.mark.docker, pytest.mark.browser]

hub = hub_fixture("shell")
SHOTS = Path(os.environ.get("BACKENDAI_HUB_SCREENSHOTS", "/tmp/bhub-screenshots"))
SHELL = "shell"


def ok(r, *codes):
    assert r.status_code in (codes or (200, 201, 204)), f"{r.request.method} {r.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


@pytest.fixture(scope="module")
def people(hub):
    admin = admin_token(hub)
    return {"admin": admin, "demo": hub_token(hub, "demo", hub.credentials["demo"]["password"]),
            "manager": hub_token(hub, "manager", hub.credentials["manager"]["password"])}


@pytest.fixture(scope="module")
def folders(hub, people):
    """demo's own 'notes' (with a file), and the manager's 'refs' shared read-only with demo."""
    demo, manager = people["demo"], people["manager"]
    ok(service_api(hub, demo, "POST", "vfolders", json={"name": "notes"}), 201)
    ok(service_api(hub, manager, "POST", "vfolders", json={"name": "refs"}), 201)
    ok(service_api(hub, manager, "POST", "vfolders/refs/invitations",
                   json={"emails": ["demo@example.com"], "permission": "ro"}), 201)
    inv = ok(service_api(hub, demo, "GET", "vfolder-invitations"))["incoming"]
    ok(service_api(hub, demo, "POST", f"vfolder-invitations/{inv[0]['id']}/accept"))
    return ["notes", "refs"]


def pane(hub, user: str = "demo") -> str:
    """What the shell's terminal shows: its tmux pane, with its scrollback."""
    c = session_container(hub, user, SHELL)
    r = c.exec_run(["tmux", "capture-pane", "-p", "-J", "-t", SHELL, "-S", "-2000"], user="1000")
    assert r.exit_code == 0, r.output
    return r.output.decode()


def in_shell(hub, cmd: str, user: str = "demo") -> tuple[int, str]:
    """Run a command in the shell's container, with the session's environment (its keys)."""
    r = session_container(hub, user, SHELL).exec_run(["bash", "-lc", cmd], user="1000", workdir="/home/work")
    return r.exit_code, r.output.decode()


def type_and_wait(page, hub, line: str, expect: str, timeout: float = 60) -> str:
    """Type a line into the terminal in Chromium; wait until ``expect`` (a regex) shows in it. A marker
    echoed at the end of the line must be matched at a line's start: the typed line shows it too."""
    page.locator(".xterm-helper-textarea").focus()
    page.keyboard.type(line)
    page.keyboard.press("Enter")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = pane(hub)
        if re.search(expect, shown):
            return shown
        time.sleep(0.5)
    page.screenshot(path=str(SHOTS / "shell-timeout.png"))
    raise AssertionError(f"{expect!r} did not show after typing {line!r}:\n{shown[-3000:]}")


def open_terminal(page, hub):
    page.wait_for_url(re.compile(r"/user/demo/shell/terminals/shell"), timeout=180_000)
    page.wait_for_selector(".xterm-helper-textarea", state="attached", timeout=90_000)
    deadline = time.monotonic() + 60
    while "$" not in pane(hub) and time.monotonic() < deadline:  # the prompt
        time.sleep(0.3)


def signed(hub, method: str, path: str, access_key: str, secret_key: str) -> requests.Response:
    rel = f"/services/backendai/api/v1/{path}"
    headers = signing.sign(method, rel, host=f"127.0.0.1:{hub.port}", date=datetime.now(timezone.utc),
                           access_key=access_key, secret_key=secret_key)
    return requests.request(method, f"{hub.url}{rel}", headers=headers, timeout=30)


def shell_env(hub, user: str = "demo") -> dict[str, str]:
    env = session_container(hub, user, SHELL).attrs["Config"]["Env"]
    return dict(e.split("=", 1) for e in env)


def wait_shell(hub, token, user="demo"):
    wait_ready(hub, token, user=user, name=SHELL, timeout=180)


def test_the_web_shell(browser, hub, people, folders):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    demo, admin = people["demo"], people["admin"]
    ok(service_api(hub, demo, "POST", "vfolders/notes/mkdir", json={"path": "kept"}), 200, 201)
    page = sign_in(browser, hub, "demo", hub.credentials["demo"]["password"])
    page.set_default_timeout(90_000)
    try:
        # one click on the home page
        page.goto(f"{hub.url}/hub/home")
        page.screenshot(path=str(SHOTS / "shell-home.png"))
        page.click("#bhub-shell-open")
        open_terminal(page, hub)
        env = shell_env(hub)
        main_key = ok(service_api(hub, demo, "GET", "me"))["main_access_key"]
        key, secret = env["BACKEND_ACCESS_KEY"], env["BACKEND_SECRET_KEY"]
        assert key != main_key and env["BACKEND_ENDPOINT"].endswith("/services/backendai")
        me = signed(hub, "GET", "me", key, secret).json()  # the session's own, never the user's main one
        assert (me["username"], me["access_key"]) == ("demo", key)
        assert env["BACKEND_ENDPOINT_TYPE"] == "api"
        # the key belongs to the session: the API says which, the self-service page tags it
        sessions = {k["access_key"]: k["session_id"] for k in ok(service_api(hub, demo, "GET", "keypairs"))["items"]}
        assert sessions[main_key] is None and sessions[key] is not None
        keys_page = page.context.new_page()
        keys_page.goto(f"{hub.url}/services/backendai/")
        row = keys_page.locator(f"#keys tr[data-access-key='{key}']")
        assert "web shell" in row.inner_text() and "web shell" not in keys_page.locator(
            f"#keys tr[data-access-key='{main_key}']").inner_text()
        keys_page.screenshot(path=str(SHOTS / "shell-selfservice-keys.png"), full_page=True)
        keys_page.close()

        # the official client at the first prompt, with the session's own keypair
        shown = type_and_wait(page, hub, "backend.ai vfolder list", r"refs")
        listed = shown[shown.rindex("backend.ai vfolder list"):]
        assert "notes" in listed and "refs" in listed, listed
        page.screenshot(path=str(SHOTS / "shell-vfolder-list.png"))
        # every folder mounted, with its permission
        shown = type_and_wait(page, hub, "ls /home/work; echo ls-done", r"(?m)^ls-done\s*$")
        listed = shown[shown.rindex("ls /home/work"):]
        assert "notes" in listed and "refs" in listed, listed
        shown = type_and_wait(page, hub, "touch /home/work/refs/x; echo ro-rc=$?", r"ro-rc=\d")
        assert "Read-only file system" in shown and "ro-rc=1" in shown, shown[-500:]
        type_and_wait(page, hub, "touch /home/work/notes/from-shell && echo rw-ok", r"(?m)^rw-ok\s*$")
        # something in the home, and in the shell's own state
        type_and_wait(page, hub, "echo kept > ~/home-file; export BHUB_MARK=mark-$((6*7))-x; echo set", r"(?m)^set\s*$")

        # a reload reattaches to the same tmux session: the variable is still set
        page.reload()
        open_terminal(page, hub)
        shown = type_and_wait(page, hub, "echo seen=$BHUB_MARK", r"seen=mark-42-x")
        assert re.search(r"\$ echo seen=\$BHUB_MARK\n", shown), shown[-800:]  # nothing typed by itself meanwhile
        page.screenshot(path=str(SHOTS / "shell-after-reload.png"))

        # restart (one click on the home page): the home is kept, the old keys are revoked, new ones work
        page.goto(f"{hub.url}/hub/home")
        page.click("#bhub-shell-restart")
        page.wait_for_function("document.getElementById('bhub-shell-status').textContent.startsWith('restarted')",
                               timeout=180_000)
        wait_shell(hub, demo)
        assert signed(hub, "GET", "me", key, secret).status_code == 401
        env = shell_env(hub)
        assert env["BACKEND_ACCESS_KEY"] != key
        code, out = in_shell(hub, "cat ~/home-file; df --output=size,target -B1M /home/work | tail -1")
        assert code == 0 and out.startswith("kept"), out
        size, target = out.split("\n")[1].split()
        assert target == "/home/work" and 900 < int(size) <= 1024, out  # its own 1 GiB filesystem
        key, secret = env["BACKEND_ACCESS_KEY"], env["BACKEND_SECRET_KEY"]
        assert signed(hub, "GET", "me", key, secret).json()["username"] == "demo"

        # reset (one REST call): the home is wiped, the vfolders are intact
        r = service_api(hub, demo, "POST", "shell/reset", json={}, timeout=180)
        assert r.status_code in (200, 202), r.text
        assert r.json()["home"] == "wiped"
        wait_shell(hub, demo)
        # done once: the options the hub keeps for the next start carry no reset
        assert "reset_home" not in hub_api(hub, admin, "GET", "users/demo").json()["servers"][SHELL]["user_options"]
        code, out = in_shell(hub, "ls -A ~; test -e ~/home-file && echo home-file-still-there; "
                                  "ls /home/work/notes /home/work/refs")
        assert code == 0, out
        assert "home-file-still-there" not in out and "from-shell" in out and "kept" in out, out
        assert signed(hub, "GET", "me", key, secret).status_code == 401
        key, secret = shell_env(hub)["BACKEND_ACCESS_KEY"], shell_env(hub)["BACKEND_SECRET_KEY"]
        page.context.close()
    finally:
        stop_server(hub, admin, "demo", SHELL)
    # after stop, the session's keypair is refused by the service
    r = signed(hub, "GET", "me", key, secret)
    assert r.status_code == 401, r.text


def test_an_admin_uses_the_admin_cli_at_the_first_prompt(hub, people, folders):
    admin = people["admin"]
    ok(hub_api(hub, admin, "POST", server_path("admin", SHELL), json={}), 201, 202)
    try:
        wait_shell(hub, admin, user="admin")
        code, out = in_shell(hub, "backendai-hub -o json user list", user="admin")
        assert code == 0, out
        assert {"admin", "demo", "manager"} <= {u["username"] for u in json.loads(out)}
        # a user's shell refuses what the user may not do: demo is no admin
    finally:
        stop_server(hub, admin, "admin", SHELL)


async def _ws(url: str, headers: dict) -> int:
    """The status a websocket upgrade gets (101 when it opens)."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    try:
        ws = await websocket_connect(HTTPRequest(url, headers=headers, follow_redirects=False))
    except HTTPClientError as e:
        return e.code
    ws.close()
    return 101


def ws_status(url: str, headers: dict) -> int:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _ws(url, headers)).result()


def test_only_the_owner_reaches_the_shell(hub, people, folders):
    demo, manager, admin = people["demo"], people["manager"], people["admin"]
    ok(hub_api(hub, demo, "POST", server_path("demo", SHELL), json={}), 201, 202)
    try:
        wait_shell(hub, demo)
        page_url = f"{hub.url}/user/demo/shell/terminals/shell"
        api_url = f"{hub.url}/user/demo/shell/api/terminals"
        ws_url = f"ws://127.0.0.1:{hub.port}/user/demo/shell/terminals/websocket/shell"
        origin = {"Origin": hub.url}
        # a terminal named 'shell' exists (the page opens it): the owner's token creates it
        r = requests.post(api_url, json={"name": SHELL}, headers={"Authorization": f"token {demo}", **origin},
                          timeout=30)
        assert r.status_code in (200, 409), r.text

        # owner: allowed, on HTTP and websocket (token, and the browser's cookie)
        assert requests.get(page_url, headers={"Authorization": f"token {demo}"}, timeout=30).status_code == 200
        assert ws_status(ws_url, {"Authorization": f"token {demo}", **origin}) == 101
        s, _ = hub.login("demo", hub.credentials["demo"]["password"])
        assert s.get(page_url, timeout=60).status_code == 200  # through the OAuth dance: the server's cookie
        cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
        assert ws_status(ws_url, {"Cookie": cookie, **origin}) == 101

        # no credentials: refused (sent to sign in), on HTTP and websocket
        r = requests.get(page_url, allow_redirects=False, timeout=30)
        assert r.status_code in (302, 401, 403) and "/terminals" not in r.headers.get("Location", "/hub/"), r.status_code
        assert ws_status(ws_url, origin) in (302, 401, 403)
        # another user's token, an admin's included: refused
        for other in (manager, admin):
            assert requests.get(page_url, headers={"Authorization": f"token {other}"}, allow_redirects=False,
                                timeout=30).status_code == 403
            assert ws_status(ws_url, {"Authorization": f"token {other}", **origin}) == 403
        # another user's cookie: the hub refuses them the server's OAuth
        m, _ = hub.login("manager", hub.credentials["manager"]["password"])
        assert m.get(page_url, timeout=60).status_code == 403
        m_cookie = "; ".join(f"{c.name}={c.value}" for c in m.cookies)
        assert ws_status(ws_url, {"Cookie": m_cookie, **origin}) in (302, 401, 403)
        # the owner's credentials from a foreign Origin: refused
        evil = {"Origin": "http://evil.example"}
        assert ws_status(ws_url, {"Cookie": cookie, **evil}) == 403
        # (a token in a header is exempt: no page of another origin can put one on a browser's request)
        r = s.post(api_url, json={}, headers=evil, timeout=30)  # a cookie without the XSRF token
        assert r.status_code == 403, r.text
    finally:
        stop_server(hub, admin, "demo", SHELL)
