"""The code-execution log in a real session: cells run in JupyterLab in Chromium are found through the
API, in order, with their statuses, each exactly once even when the service dies meanwhile; a terminal's
lines too; a session whose domain and group have logging off records nothing and shows no notice."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.browser.test_signin import browser, sign_in  # noqa: F401 - the fixture
from tests.hubproc import admin_token, hub_api, hub_fixture, hub_token, run_cli, server_path, service_api, \
    session_container, stop_server, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.browser]

hub = hub_fixture("codelog", BACKENDAI_HUB_CULL_INTERVAL="2")
SMALL = {"cpu": 1, "mem": "1g"}
SHOTS = Path(os.environ.get("BACKENDAI_HUB_SCREENSHOTS", "/tmp/bhub-screenshots"))

CELLS = ["print('one')", "1 / 0", "print('three')",
         "import time; time.sleep(1); print('four')", "print('five')", "print('six')"]


def _notebook(cells: list[str]) -> dict:
    return {"type": "notebook", "content": {
        "cells": [{"cell_type": "code", "id": f"c{i}", "source": src, "metadata": {}, "outputs": [],
                   "execution_count": None} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}}


@pytest.fixture(scope="module")
def people(hub):
    admin = admin_token(hub)  # signs demo and manager in: their hub roles (with the code-log scope) exist
    demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
    r = run_cli(hub, "group", "update", "ml", "-d", "default", "--code-log")
    assert r.returncode == 0, r.stderr
    return {"admin": admin, "demo": demo}


def _put(hub, token, server: str, path: str, model: dict) -> None:
    base = f"{hub.url}/user/demo/{server + '/' if server else ''}api/contents/{path}"
    r = requests.put(base, json=model, headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code in (200, 201), r.text


def _run_cells(page, first: int, count: int) -> None:
    """Run cells ``first`` .. ``first + count - 1`` one by one (click, Shift+Enter), each time waiting for
    its execution count. A cell whose prompt stays blank (no request sent: JupyterLab was still
    connecting its kernel) is tried again; one that shows [*] was sent and is never sent twice."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
    cells = page.locator(".jp-Notebook .jp-Cell")
    for i in range(first, first + count):
        prompt = cells.nth(i).locator(".jp-InputPrompt")
        deadline = time.monotonic() + 90
        while True:
            cells.nth(i).locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            retry = time.monotonic() + 8
            while not re.search(r"\[[\d*]+\]", prompt.inner_text()) and time.monotonic() < retry:
                time.sleep(0.2)
            if re.search(r"\[[\d*]+\]", prompt.inner_text()):
                break
            if time.monotonic() > deadline:
                page.screenshot(path=str(SHOTS / f"cell-{i}-did-not-run.png"))
                raise AssertionError(f"cell {i} did not run: {prompt.inner_text()!r}")
        while not re.search(r"\[\d+\]", prompt.inner_text()):
            if time.monotonic() > deadline:
                page.screenshot(path=str(SHOTS / f"cell-{i}-did-not-finish.png"))
                raise AssertionError(f"cell {i} did not finish: {prompt.inner_text()!r}")
            time.sleep(0.2)


def _logs(hub, token, **query) -> list[dict]:
    r = service_api(hub, token, "GET", "code-logs", params={"limit": 1000, **query})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _wait_logs(hub, token, n: int, timeout: float = 120, **query) -> list[dict]:
    deadline = time.monotonic() + timeout
    items: list[dict] = []
    while time.monotonic() < deadline:
        try:
            items = _logs(hub, token, **query)
        except (AssertionError, requests.RequestException):
            items = []  # the service is restarting
        if len(items) >= n:
            return items
        time.sleep(1)
    raise AssertionError(f"{len(items)} record(s) after {timeout}s, expected {n}: {items}")


def _service_pid(hub) -> int:
    """The pid of the hub's managed service process (a child of the hub)."""
    port = f"JUPYTERHUB_SERVICE_URL=http://127.0.0.1:{hub.port + 3}"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"backendai_hub.service" in cmd and port.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                return int(pid)
        except OSError:
            continue
    raise AssertionError("the service process is not running")


def _notice(page) -> str:
    return page.evaluate("getComputedStyle(document.body, '::after').content")


def _open_lab(browser, hub, server: str, path: str):  # noqa: F811
    page = sign_in(browser, hub, "demo", hub.credentials["demo"]["password"])
    page.set_default_timeout(90_000)
    page.goto(f"{hub.url}/user/demo/{server + '/' if server else ''}lab/tree/{path}")
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
    time.sleep(2)
    for dialog in page.locator(".jp-Dialog").all():  # e.g. a kernel or server notice: say it, then close it
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"dialog-{server or 'default'}.png"))
        print("JupyterLab dialog:", dialog.inner_text()[:500])
        page.keyboard.press("Escape")
    return page


def test_cells_are_recorded_in_order_exactly_once_even_when_the_service_dies(browser, hub, people):  # noqa: F811
    admin, demo = people["admin"], people["demo"]
    assert hub_api(hub, demo, "POST", server_path("demo"), json={"group": "ml", "resources": SMALL}).status_code in (
        201, 202)
    wait_ready(hub, demo)
    try:
        env = session_container(hub).attrs["Config"]["Env"]
        assert "BACKENDAI_HUB_CODE_LOG=1" in env
        _put(hub, demo, "", "logged.ipynb", _notebook(CELLS))
        page = _open_lab(browser, hub, "", "logged.ipynb")
        _run_cells(page, 0, 3)
        items = _wait_logs(hub, admin, 3, user="demo")
        assert [r["code"] for r in items] == CELLS[:3]
        assert [r["status"] for r in items] == ["ok", "error", "ok"]
        assert [r["execution_count"] for r in items] == [1, 2, 3]
        assert all(r["kind"] == "cell" and r["group"] == "ml" and r["server_name"] == "" for r in items)
        assert all(r["captured_by"].startswith("session-server ") for r in items)
        assert "Code logging is on" in _notice(page)
        page.screenshot(path=str(SHOTS / "code-log-notice.png"))

        # the service hangs, then dies, while cells run: the hub restarts it and every cell arrives once
        pid = _service_pid(hub)
        os.kill(pid, signal.SIGSTOP)
        try:
            _run_cells(page, 3, 3)
            time.sleep(3)  # the session tries, and finds no answer
        finally:
            os.kill(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGCONT)
        items = _wait_logs(hub, admin, 6, timeout=180, user="demo")
        time.sleep(3)  # nothing more trickles in afterwards
        items = _logs(hub, admin, user="demo")
        assert [r["code"] for r in items] == CELLS
        assert len({r["record_id"] for r in items}) == len({r["msg_id"] for r in items}) == 6
        assert _service_pid(hub) != pid

        # a terminal's lines, and the shell's banner
        keys = ["echo hello-terminal\r", "ls /tmp \x7f\x7f\x7f\x7f\x7fpwd\r"]
        with ThreadPoolExecutor(1) as pool:  # playwright's loop runs in this thread
            out = pool.submit(asyncio.run, _terminal(hub, demo, keys)).result()
        assert "Code logging is on" in out, out
        terms = _wait_logs(hub, admin, 2, kind="terminal")
        assert [r["code"] for r in terms] == ["echo hello-terminal", "ls pwd"]  # as typed, Backspaces applied
        assert all(r["kernel_id"].startswith("terminal:") for r in terms)
        # the user sees their own; the domain admin theirs; nobody else's
        assert len(_logs(hub, demo)) == len(_logs(hub, admin, user="demo"))
        page.context.close()
    finally:
        stop_server(hub, admin, "demo")


async def _terminal(hub, token: str, keys: list[str]) -> str:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    r = requests.post(f"{hub.url}/user/demo/api/terminals", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{hub.port}/user/demo/terminals/websocket/{name}",
                                             headers={"Authorization": f"token {token}"}))
    out = []

    async def read(seconds: float):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = await asyncio.wait_for(ws.read_message(), max(0.05, end - time.monotonic()))
            except asyncio.TimeoutError:
                return
            if msg is None:
                return
            kind, *data = json.loads(msg)
            if kind == "stdout":
                out.append(data[0])

    await read(3)
    for k in keys:
        ws.write_message(json.dumps(["stdin", k]))
        await read(1)
    ws.close()
    return "".join(out)


def test_a_session_without_logging_records_nothing(browser, hub, people):  # noqa: F811
    admin, demo = people["admin"], people["demo"]
    r = hub_api(hub, demo, "POST", server_path("demo", "plain"), json={"group": "default", "resources": SMALL})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, demo, name="plain")
    try:
        env = session_container(hub, name="plain").attrs["Config"]["Env"]
        assert not any(e.startswith("BACKENDAI_HUB_CODE_LOG") for e in env)
        _put(hub, demo, "plain", "off.ipynb", _notebook(["print('not recorded')"]))
        page = _open_lab(browser, hub, "plain", "off.ipynb")
        _run_cells(page, 0, 1)
        assert "Code logging" not in _notice(page)
        page.screenshot(path=str(SHOTS / "code-log-off.png"))
        time.sleep(6)  # more than the session's shipping interval
        assert _logs(hub, admin, server="plain") == []
        assert not [r for r in _logs(hub, admin) if "not recorded" in r["code"]]
    finally:
        stop_server(hub, admin, "demo", "plain")
