"""Shiny in the R image through the hub proxy: a session started with app=shiny lands on the bundled echo
app; its websocket round trip (Shiny's own protocol, R's own web server) works through the hub proxy; the
auth matrix holds on HTTP and websocket, and refused requests never start or reach the app."""

from __future__ import annotations

import asyncio

import pytest
import requests

from tests.docker.apps_common import FOREIGN, browser_session, cookie_header, start_ready, tokens, ws_round_trip
from tests.hubproc import admin_token, hub_fixture, session_container, stop_server
from tests.shiny_client import ShinyEcho

pytestmark = pytest.mark.docker

R_IMAGE = "backendai-hub/r:latest"
hub = hub_fixture("apps-shiny")


@pytest.fixture(scope="module")
def who(hub, client):
    client.images.get(R_IMAGE)  # built by `bash kernels/build.sh r` (make images)
    admin_token(hub)
    return tokens(hub)


@pytest.fixture(scope="module")
def sh(hub, who):
    url = start_ready(hub, who["demo"], "sh", R_IMAGE, "shiny")
    yield url
    stop_server(hub, who["demo"], "demo", "sh")


def r_processes(hub) -> list[str]:
    ps = session_container(hub, "demo", "sh").exec_run(["ps", "-eo", "args="]).output.decode()
    return [line for line in ps.splitlines() if "shiny::runApp" in line]


def echo_through(url: str, headers: dict, texts=("hello", "wörld")) -> list[int]:
    async def go():
        client = ShinyEcho(url, headers)
        await client.connect()
        try:
            return [await client.echo(t) for t in texts]
        finally:
            client.close()

    return asyncio.run(go())


def test_refused_requests_never_start_the_app_and_the_owner_lands_on_it(hub, sh, who):
    page = f"{sh}shiny/"
    ws = page.replace("http://", "ws://") + "websocket/"
    other = browser_session(hub, "manager")
    refused = {"other-cookie": (other, {}), "no-cookie": (None, {}),
               "other-token": (None, {"Authorization": f"token {who['manager']}"})}
    for probe, (sess, headers) in refused.items():
        r = (sess or requests).get(page, headers=headers, timeout=30)
        assert r.status_code == 403 or "/hub/login" in r.url, (probe, r.status_code, r.url)
        status, reply = ws_round_trip(ws, {**headers, **({"Cookie": cookie_header(sess)} if sess else {})})
        assert status in (302, 403) and reply is None, (probe, status)
    assert r_processes(hub) == [], "a refused request started the Shiny app"

    owner = browser_session(hub, "demo")
    r = owner.get(sh, timeout=90)  # the session's own URL lands on the app
    assert r.status_code == 200 and r.url == page, (r.status_code, r.url)
    assert "Shiny echo" in r.text
    assert len(r_processes(hub)) == 1

    # a foreign Origin with the owner's cookies: refused on HTTP and websocket
    r = owner.get(page, headers={"Origin": FOREIGN}, timeout=30)
    assert r.status_code == 403, r.status_code
    status, reply = ws_round_trip(ws, {"Cookie": cookie_header(owner), "Origin": FOREIGN})
    assert (status, reply) == (403, None)


def test_websocket_round_trip_through_the_hub_proxy(hub, sh, who):
    ws = f"{sh}shiny/websocket/".replace("http://", "ws://")
    owner = browser_session(hub, "demo")
    assert owner.get(sh, timeout=90).status_code == 200
    samples = echo_through(ws, {"Cookie": cookie_header(owner)})
    assert len(samples) == 2 and all(s > 0 for s in samples)
    samples = echo_through(ws, {"Authorization": f"token {who['demo']}"})
    assert len(samples) == 2
