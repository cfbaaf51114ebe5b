"""The sidebar's server extension (labextension/backendai_hub_labextension/sidebar.py) in a real jupyter_server,
in process, in front of the real service on a real port: every route authenticated, XSRF on writes for
a browser's cookie, each call forwarded with the server's own token (never the browser's credential),
the service's errors passed through, and the whole flow a user drives from the sidebar.

The hub is not running here: the service's HubOAuth answers for the session tokens as the hub would
(see test_sidebar_service.py; the real hub's scopes are in test_sidebar_hub.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import socket
import sys
from pathlib import Path

import pytest
from backendai_hub_labextension import sidebar  # labextension/ is on the tests' pythonpath (setup.cfg)
from jupyter_server.serverapp import ServerApp
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets.config import Config

from tests.integration.service_harness import service_fixtures
from tests.integration.test_sidebar_service import hub_tokens, world
from tests.integration.vfolder_harness import PREFIX, Service


REPO = Path(__file__).resolve().parents[2]
BASE = "/user/alice/"
TOKEN = "browser-credential-0123456789"  # what the browser (JupyterLab) authenticates with

template, svc = service_fixtures(Service, setup=world)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Seen:
    """The tokens the service was asked about (what the extension sent it)."""

    def __init__(self, svc):
        self.tokens: list[str] = []
        hub_auth = svc.app.settings["hub_auth"]
        answer = hub_auth.user_for_token

        async def user_for_token(token, **kw):
            self.tokens.append(token)
            return await answer(token, **kw)

        hub_auth.user_for_token = user_for_token


@pytest.fixture
async def lab(svc, tmp_path, monkeypatch):
    """A jupyter_server with the extension, as alice's default server: its own token sess-alice."""
    hub_tokens(svc)
    seen = Seen(svc)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "sess-alice")
    monkeypatch.setenv("BACKENDAI_HUB_SERVICE_URL", f"{svc.base}{PREFIX}")
    root = tmp_path / "home-work"
    root.mkdir()
    port = _port()
    ServerApp.clear_instance()
    # ServerApp.init_logging re-parents and renames tornado's loggers for the whole process: put them back
    # after the test, or later tests' log captures (the access log's redaction) see nothing
    saved = [(lg, lg.name, lg.parent, lg.propagate, lg.level) for lg in (
        logging.getLogger(n) for n in ("tornado", "tornado.access", "tornado.application", "tornado.general"))]
    app = ServerApp.instance(port=port, port_retries=0, open_browser=False, base_url=BASE, root_dir=str(root),
                             allow_root=True, log_level="WARN", config=Config({
                                 "ServerApp": {"jpserver_extensions": {"backendai_hub_labextension": True}},
                                 "IdentityProvider": {"token": TOKEN}}))
    app.init_signal = lambda: None
    app.initialize(argv=[], new_httpserver=True)
    app.start_app()
    app.test_url = f"http://127.0.0.1:{port}{BASE}backendai-hub/api/"
    app.seen = seen
    app.root = root
    try:
        yield app
    finally:
        await app._cleanup()
        ServerApp.clear_instance()
        for lg, name, parent, propagate, level in saved:
            lg.name, lg.parent, lg.propagate = name, parent, propagate
            lg.setLevel(level)


async def fetch(lab, method: str, path: str, body=None, *, auth: bool = True, headers=None, raw: bytes | None = None):
    hdrs = {"Authorization": f"token {TOKEN}"} if auth else {}
    hdrs.update(headers or {})
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is None and method in ("POST", "PATCH"):
        data = b""
    req = HTTPRequest(lab.test_url + path, method=method, body=data, headers=hdrs, follow_redirects=False,
                      allow_nonstandard_methods=True)
    resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    try:
        payload = json.loads(resp.body) if resp.body else None
    except ValueError:
        payload = resp.body
    return resp.code, payload


def sample(pattern: str) -> str:
    return re.sub(r"\(\[\^/\]\+\)", "0" * 32, pattern).replace("(accept|decline)", "accept")


ALL_ROUTES = [(sample(p), m) for p, _h, forwards in sidebar.ROUTES for m in forwards]


@pytest.mark.parametrize("path, method", ALL_ROUTES)
async def test_every_route_refuses_an_unauthenticated_request_before_the_service_hears_of_it(lab, path, method):
    code, _ = await fetch(lab, method, path, {} if method in ("POST", "PATCH") else None, auth=False)
    assert code == 403, (path, method, code)
    code, _ = await fetch(lab, method, path, {} if method in ("POST", "PATCH") else None, auth=False,
                          headers={"Authorization": "token not-the-servers-token"})
    assert code == 403
    assert lab.seen.tokens == []


@pytest.fixture
async def lab_process(svc, tmp_path):
    """The same server as its own ``jupyter-server`` process: XSRF is checked as in a session, untouched by
    the in-process service's HubOAuth (which patches tornado's XSRF check class-wide for its own cookies)."""
    hub_tokens(svc)
    port = _port()
    root = tmp_path / "home-work"
    root.mkdir()
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": "sess-alice", "BACKENDAI_HUB_SERVICE_URL": f"{svc.base}{PREFIX}",
           "PYTHONPATH": os.pathsep.join([str(REPO / "labextension"), os.environ.get("PYTHONPATH", "")]),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_PLATFORM_DIRS": "1"}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"backendai_hub_labextension": True}}}))
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("jupyter-server")), f"--port={port}", "--port-retries=0", "--no-browser",
        "--allow-root", f"--ServerApp.base_url={BASE}", f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={TOKEN}",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}{BASE}"
    client = AsyncHTTPClient()
    for _ in range(200):
        try:
            r = await client.fetch(f"{url}api/status", headers={"Authorization": f"token {TOKEN}"}, raise_error=False)
            if r.code == 200:
                break
        except OSError:
            pass
        if proc.returncode is not None:
            raise AssertionError((tmp_path / "server.log").read_text()[-3000:])
        await asyncio.sleep(0.1)
    else:
        raise AssertionError((tmp_path / "server.log").read_text()[-3000:])
    try:
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


def _cookies(resp, jar: dict) -> str:
    for header in resp.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        jar[name] = rest.split(";")[0]
    return "; ".join(f"{k}={v}" for k, v in jar.items())


async def test_a_browser_cookie_writes_only_with_the_xsrf_token(lab_process):
    client, url, jar = AsyncHTTPClient(), lab_process, {}
    # sign in as a browser does: the login page (its XSRF cookie), the form, then a page signed in
    nav = {"Sec-Fetch-Mode": "navigate"}
    page = await client.fetch(HTTPRequest(f"{url}login", headers=nav), raise_error=False)
    cookie = _cookies(page, jar)
    login = await client.fetch(HTTPRequest(f"{url}login?next={BASE}login", method="POST", follow_redirects=False,
                                           body=f"password={TOKEN}&_xsrf={jar.get('_xsrf', '')}",
                                           headers={"Cookie": cookie, **nav}), raise_error=False)
    cookie = _cookies(login, jar)
    assert any(n.startswith("username-") for n in jar), (login.code, login.body[:300])
    page = await client.fetch(HTTPRequest(f"{url}login", headers={"Cookie": cookie, **nav}, follow_redirects=False),
                              raise_error=False)
    cookie = _cookies(page, jar)
    assert "_xsrf" in jar, page.headers
    api = f"{url}backendai-hub/api/folders"
    r = await client.fetch(HTTPRequest(api, headers={"Cookie": cookie}), raise_error=False)
    assert r.code == 200 and json.loads(r.body)["me"]["username"] == "alice"  # reads need no XSRF token
    body = json.dumps({"name": "via-cookie"})
    r = await client.fetch(HTTPRequest(api, method="POST", body=body, headers={"Cookie": cookie}), raise_error=False)
    assert r.code == 403 and "_xsrf" in json.loads(r.body)["message"], r.body
    r = await client.fetch(HTTPRequest(api, method="POST", body=body,
                                       headers={"Cookie": cookie, "X-XSRFToken": jar["_xsrf"]}), raise_error=False)
    assert r.code == 201 and json.loads(r.body)["name"] == "via-cookie", r.body
    for method in ("PATCH", "DELETE"):  # every write route checks it (a sample: the folder's own)
        fid = json.loads(r.body)["id"]
        w = await client.fetch(HTTPRequest(f"{url}backendai-hub/api/folders/{fid}", method=method,
                                           body=json.dumps({"name": "n2"}) if method == "PATCH" else None,
                                           headers={"Cookie": cookie}, allow_nonstandard_methods=True),
                               raise_error=False)
        assert w.code == 403, (method, w.code)


async def test_calls_go_with_the_servers_own_token_and_errors_come_back_as_the_service_said(lab, monkeypatch):
    code, ov = await fetch(lab, "GET", "folders")
    assert code == 200 and {f["name"] for f in ov["folders"]} == {"data", "pub", "team"}
    assert set(lab.seen.tokens) == {"sess-alice"} and TOKEN not in lab.seen.tokens
    data = next(f for f in ov["folders"] if f["name"] == "data")
    assert data["mount"]["browser_path"] is None  # /home/work is not this test server's root
    code, err = await fetch(lab, "POST", "folders", {"name": "data"})
    assert (code, err["field"]) == (409, "name") and "already exists" in err["message"]
    code, err = await fetch(lab, "PATCH", f"folders/{data['id']}", {"name": "bad/name"})
    assert (code, err["field"]) == (400, "name"), err
    code, err = await fetch(lab, "POST", "folders", raw=b"{not json")
    assert (code, err["field"]) == (400, "body")
    # another server's token is another user: bob's server sees bob's folders, and not alice's
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "sess-bob")
    code, ov = await fetch(lab, "GET", "folders")
    assert {f["name"]: f["group"] for f in ov["folders"]} == {"bobs": "mine", "pub": "public"}
    code, err = await fetch(lab, "DELETE", f"folders/{data['id']}")
    assert (code, err["field"]) == (404, "vfolder")
    # the service down: a sentence saying so
    monkeypatch.setenv("BACKENDAI_HUB_SERVICE_URL", f"http://127.0.0.1:{_port()}/services/backendai/")
    code, err = await fetch(lab, "GET", "folders")
    assert code == 502 and err["message"].startswith("cannot reach the backendai-hub service")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    code, err = await fetch(lab, "GET", "folders")
    assert code == 503 and "does not run under backendai-hub's JupyterHub" in err["message"]


async def test_the_sidebars_flow_through_the_extension(lab, svc):
    """What the sidebar does for a user, each step through the extension (uploads: straight to the service)."""
    code, made = await fetch(lab, "POST", "folders", {"name": "proj", "cloneable": True})
    assert code == 201
    fid = made["id"]
    # upload: a grant, then the browser talks tus to the service itself, resumes with a fresh grant
    payload = os.urandom(1 << 20)
    code, grant = await fetch(lab, "POST", f"folders/{fid}/uploads", {"path": "x.bin", "size": len(payload)})
    assert code == 201 and grant["url"].startswith(f"{PREFIX}folders/_/tus/upload?token=")
    client = AsyncHTTPClient()
    tus = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    r = await client.fetch(HTTPRequest(svc.base + grant["url"], method="PATCH", body=payload[:1000],
                                       headers={**tus, "Upload-Offset": "0"}), raise_error=False)
    assert r.code == 204
    code, again = await fetch(lab, "POST", f"folders/{fid}/uploads", {"upload_id": grant["upload_id"]})
    assert code == 200 and again["offset"] == 1000
    r = await client.fetch(HTTPRequest(svc.base + again["url"], method="PATCH", body=payload[1000:],
                                       headers={**tus, "Upload-Offset": "1000"}), raise_error=False)
    assert r.code == 204
    code, listing = await fetch(lab, "GET", f"folders/{fid}/files")
    assert [(f["name"], f["size"]) for f in listing["items"]] == [("x.bin", len(payload))]
    code, dl = await fetch(lab, "GET", f"folders/{fid}/download?path=x.bin")
    assert code == 200 and dl["name"] == "x.bin"
    r = await client.fetch(svc.base + dl["url"], raise_error=False)
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(payload).hexdigest()
    code, cancel = await fetch(lab, "POST", f"folders/{fid}/uploads", {"path": "y.bin", "size": 5})
    code, _ = await fetch(lab, "DELETE", f"folders/{fid}/uploads/{cancel['upload_id']}")
    assert code == 204
    # invite carol ro; carol's server (its own token) shows the invitation and accepts it; alice kicks her
    code, invited = await fetch(lab, "POST", f"folders/{fid}/invitations", {"emails": ["carol@example.com"],
                                                                         "permission": "ro"})
    assert code == 201 and invited["items"][0]["permission"] == "ro"
    os.environ["JUPYTERHUB_API_TOKEN"] = "sess-carol"
    code, ov = await fetch(lab, "GET", "folders")
    assert [i["vfolder_name"] for i in ov["invitations"]["incoming"]] == ["proj"]
    code, _ = await fetch(lab, "POST", f"invitations/{ov['invitations']['incoming'][0]['id']}/accept", {})
    assert code == 200
    code, ov = await fetch(lab, "GET", "folders")
    proj = next(f for f in ov["folders"] if f["name"] == "proj")
    assert (proj["group"], proj["permission"], proj["actions"]["upload"]["allowed"]) == ("shared", "ro", False)
    code, err = await fetch(lab, "POST", f"folders/{fid}/uploads", {"path": "z", "size": 1})
    assert code == 403 and err["message"] == proj["actions"]["upload"]["reason"]
    code, clone = await fetch(lab, "POST", f"folders/{fid}/clone", {"name": "proj-copy"})
    assert code == 202 and clone["status"] == "cloning"
    for _ in range(100):
        code, task = await fetch(lab, "GET", f"tasks/{clone['task']['id']}")
        if task["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert task["status"] == "done" and task["copied_bytes"] == len(payload), task
    code, _ = await fetch(lab, "POST", f"folders/{fid}/leave", {})
    assert code == 204
    os.environ["JUPYTERHUB_API_TOKEN"] = "sess-alice"
    code, _ = await fetch(lab, "POST", f"folders/{fid}/invitations", {"emails": ["mia@example.com"]})
    code, collab = await fetch(lab, "GET", f"folders/{fid}/collaborators")
    assert [(c["user"], c["state"]) for c in collab["items"]] == [("mia", "invited")]
    code, _ = await fetch(lab, "DELETE", f"folders/{fid}/collaborators/mia")
    assert code == 204
    os.environ["JUPYTERHUB_API_TOKEN"] = "sess-bob"  # bob declines alice's invitation
    code, inv = await fetch(lab, "POST", f"folders/{fid}/invitations", {"emails": ["mia@example.com"]})
    assert code == 404  # bob does not see alice's folder at all
    os.environ["JUPYTERHUB_API_TOKEN"] = "sess-alice"
    code, inv = await fetch(lab, "POST", f"folders/{fid}/invitations", {"emails": ["bob@example.com"]})
    os.environ["JUPYTERHUB_API_TOKEN"] = "sess-bob"
    code, got = await fetch(lab, "GET", "invitations")
    code, answered = await fetch(lab, "POST", f"invitations/{got['incoming'][0]['id']}/decline", {})
    assert code == 200 and answered["state"] == "rejected"
    os.environ["JUPYTERHUB_API_TOKEN"] = "sess-alice"
    # rename, trash, restore, purge
    code, renamed = await fetch(lab, "PATCH", f"folders/{fid}", {"name": "proj2"})
    assert code == 200 and renamed["name"] == "proj2"
    code, _ = await fetch(lab, "DELETE", f"folders/{fid}")
    assert code == 204
    code, trash = await fetch(lab, "GET", "trash")
    assert [f["name"] for f in trash["items"]] == ["proj2"]
    code, _ = await fetch(lab, "POST", f"folders/{fid}/restore", {})
    assert code == 200
    code, _ = await fetch(lab, "DELETE", f"folders/{fid}")
    code, _ = await fetch(lab, "POST", f"folders/{fid}/purge", {})
    assert code == 204
    code, trash = await fetch(lab, "GET", "trash")
    assert trash["items"] == []
    code, err = await fetch(lab, "POST", "session/restart", {"vfolders": ["data"]})
    assert code == 409 and "no running session" in err["message"]


async def test_mounted_folders_open_in_the_file_browser_relative_to_the_servers_root(lab, svc, monkeypatch):
    """mount.browser_path is the mount's path relative to the server's root directory (docbrowser:open)."""
    from backendai_hub.models import Group, KernelSession, SessionStatus, User, VFolder, VFolderMount
    from sqlalchemy import select
    with svc.db.session() as s:
        u = s.scalar(select(User).where(User.username == "alice"))
        g = s.scalar(select(Group).where(Group.name == "ml"))
        vf = s.scalar(select(VFolder).where(VFolder.name == "data"))
        k = KernelSession(user_id=u.id, server_name="", access_key=u.keypairs[0].access_key, group_id=g.id,
                          domain_id=g.domain_id, image="img", status=SessionStatus.running)
        s.add(k)
        s.flush()
        s.add(VFolderMount(session_id=k.id, vfolder_id=vf.id, target=f"{lab.root}/data", read_only=True))
    code, ov = await fetch(lab, "GET", "folders")
    data = next(f for f in ov["folders"] if f["name"] == "data")
    assert data["mount"] == {"mounted": True, "path": f"{lab.root}/data", "mode": "ro", "browser_path": "data"}
