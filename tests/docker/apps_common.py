"""Helpers of the app tests: test images built from the notebook image, sessions with an app, and the
requests a browser makes to an app route (HTTP and websocket) as the owner, another user or nobody."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import requests

from tests.hubproc import HubProcess, hub_api, hub_token, server_path, wait_ready

HERE = Path(__file__).resolve().parent
SMALL = {"cpu": 1, "mem": "1g"}
FOREIGN = "http://evil.example.com"


def build_image(tag: str, dockerfile: str, files: dict[str, Path] | None = None) -> None:
    """``docker build --network none`` of a small test image whose context is ``dockerfile`` + ``files``."""
    import docker

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [("Dockerfile", dockerfile.encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, path in (files or {}).items():
            tar.add(str(path), arcname=name)
    buf.seek(0)
    docker.from_env().images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="none", rm=True,
                                   pull=False)


def start(hub: HubProcess, token: str, name: str, image: str, app: str, user: str = "demo") -> requests.Response:
    return hub_api(hub, token, "POST", server_path(user, name), json={"image": image, "app": app, "resources": SMALL})


def start_ready(hub: HubProcess, token: str, name: str, image: str, app: str, user: str = "demo") -> str:
    r = start(hub, token, name, image, app, user)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, token, user, name, timeout=120)
    return f"{hub.url}/user/{user}/{name}/"


def browser_session(hub: HubProcess, user: str) -> requests.Session:
    """A requests session signed in to the hub as ``user`` (cookies, as a browser holds them)."""
    s, r = hub.login(user, hub.credentials[user]["password"])
    assert r.status_code == 302, r.text[:300]
    return s


def owner_cookies(hub: HubProcess, s: requests.Session, server_url: str) -> None:
    """Let the session's server sign ``s`` in (the OAuth round trip a browser makes on first visit)."""
    r = s.get(server_url, timeout=30)  # a page, as a browser navigates (cookie-authenticated API calls need xsrf)
    assert r.status_code == 200, (r.status_code, r.url)


def cookie_header(s: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


def ws_round_trip(url: str, headers: dict, message: str = "hello", timeout: float = 30):
    """(status, reply): 101 and the first reply when the handshake is accepted, else the HTTP status."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    async def go():
        try:
            conn = await asyncio.wait_for(websocket_connect(HTTPRequest(url, headers=headers,
                                                                        connect_timeout=timeout)), timeout)
        except HTTPClientError as e:
            return e.code, None
        try:
            await conn.write_message(message)
            return 101, await asyncio.wait_for(conn.read_message(), timeout)
        finally:
            conn.close()

    return asyncio.run(go())


def tokens(hub: HubProcess) -> dict[str, str]:
    return {who: hub_token(hub, who, hub.credentials[who]["password"]) for who in ("demo", "manager")}
