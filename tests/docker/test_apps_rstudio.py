"""RStudio through the hub proxy, with the rserver TEST DOUBLE (tests/docker/rserver_double; not RStudio):
a session started with app=rstudio lands on it, rserver is launched with the flags a session needs, both
of its cookies survive and its redirects stay under the prefix; the auth matrix on HTTP and websocket
(owner allowed; another user's cookie or token, no cookie, a foreign Origin refused before the double
sees the request); polling is no activity; the image labels run-as-root and envs.userid."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.docker.apps_common import FOREIGN, HERE, browser_session, build_image, cookie_header, owner_cookies, \
    start, start_ready, tokens, ws_round_trip
from tests.hubproc import admin_token, hub_api, hub_fixture, session_container, stop_server

pytestmark = pytest.mark.docker

DOUBLE = "backendai-hub/apps-rserver-double:test"
ROOT_REFUSED = "backendai-hub/apps-root-refused:test"
ROOT_ALLOWED = "backendai-hub/apps-root-allowed:test"

hub = hub_fixture("apps-rstudio", BACKENDAI_HUB_EXTRA_CONFIG=str(HERE / "apps_root_config.py"))


@pytest.fixture(scope="module")
def images(client):
    build_image(DOUBLE, (HERE / "rserver_double" / "Dockerfile").read_text(),
                {"rserver": HERE / "rserver_double" / "rserver"})
    for tag in (ROOT_REFUSED, ROOT_ALLOWED):  # two images (not two tags of one: the allowance is per image)
        build_image(tag, f"FROM backendai-hub/notebook:latest\nLABEL ai.backend.run-as-root=1 test.tag={tag}\n")
    yield
    for tag in (DOUBLE, ROOT_REFUSED, ROOT_ALLOWED):
        client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def who(hub, images):
    admin_token(hub)  # demo and manager exist in the hub
    return tokens(hub)


@pytest.fixture(scope="module")
def rs(hub, who):
    """demo's session 'rs' on the double's image, started with app=rstudio."""
    url = start_ready(hub, who["demo"], "rs", DOUBLE, "rstudio")
    yield url
    stop_server(hub, who["demo"], "demo", "rs")


def double_log(hub) -> list[dict]:
    out = session_container(hub, "demo", "rs").exec_run(["cat", "/tmp/rserver-double.log"]).output.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_session_started_with_rstudio_lands_on_it(hub, rs):
    owner = browser_session(hub, "demo")
    r = owner.get(rs, timeout=60)  # the session's own URL, as the hub's home page opens it
    assert r.status_code == 200, r.text[:300]
    assert r.url == f"{rs}rstudio/workspace"  # the double's absolute http://127.0.0.1:8787/... rewritten
    assert "RStudio double" in r.text
    assert not [e for e in double_log(hub) if "refused-start" in e]
    home = owner.get(f"{hub.url}/hub/home", timeout=30)
    assert home.status_code == 200
    assert 'data-app="rstudio"' in home.text and 'href="/user/demo/rs/rstudio/"' in home.text, home.text[-2000:]


def test_rserver_is_launched_as_a_session_needs(hub, rs):
    c = session_container(hub, "demo", "rs")
    argv = json.loads(c.exec_run(["cat", "/tmp/rserver-double.argv"]).output)
    flags = dict(a[2:].split("=", 1) for a in argv)
    assert flags["auth-none"] == "1" and flags["server-user"] == "work"
    assert flags["www-root-path"] == "/user/demo/rs/rstudio/"
    assert flags["www-address"] == "127.0.0.1" and flags["www-port"] == "8787"
    assert flags["secure-cookie-key-file"].startswith("/tmp/rstudio-")
    ps = c.exec_run(["ps", "-eo", "user=,args="]).output.decode()
    assert any(line.split()[0] in ("work", "1000") and "rserver" in line for line in ps.splitlines()), ps


def test_both_cookies_survive_the_proxy_scoped_to_the_prefix(hub, rs):
    owner = browser_session(hub, "demo")
    owner_cookies(hub, owner, rs)
    r = owner.get(f"{rs}rstudio/", allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    set_cookies = r.raw.headers.getlist("Set-Cookie")
    names = sorted(v.split("=", 1)[0] for v in set_cookies)
    assert names == ["csrf-token", "user-id"], set_cookies
    assert all("Path=/user/demo/rs/rstudio/" in v for v in set_cookies), set_cookies
    assert r.headers["Location"] == f"{rs}rstudio/workspace"
    page = owner.get(r.headers["Location"], timeout=30)
    sent = page.text.split("cookies: ", 1)[1].split("<", 1)[0].split(",")
    assert {"csrf-token", "user-id"} <= set(sent), sent  # the browser sends both back through the proxy


def test_auth_matrix_http_and_websocket(hub, rs, who):
    owner = browser_session(hub, "demo")
    owner_cookies(hub, owner, rs)
    other = browser_session(hub, "manager")
    page = f"{rs}rstudio/workspace"
    ws = page.replace("http://", "ws://").replace("/workspace", "/events/ws")

    # the owner: allowed on both
    assert owner.get(f"{page}?probe=owner", timeout=30).status_code == 200
    status, reply = ws_round_trip(f"{ws}?probe=owner", {"Cookie": cookie_header(owner)})
    assert (status, reply) == (101, "rstudio-double:hello")
    status, reply = ws_round_trip(f"{ws}?probe=owner-token", {"Authorization": f"token {who['demo']}"})
    assert (status, reply) == (101, "rstudio-double:hello")

    # (the browser session that sends its cookies, extra headers): each refused on HTTP and websocket
    refused = {
        "other-cookie": (other, {}),  # another user's browser: signed in to the hub, not this server's owner
        "no-cookie": (None, {}),
        "foreign-origin": (owner, {"Origin": FOREIGN}),
        "other-token": (None, {"Authorization": f"token {who['manager']}"}),
    }
    for probe, (sess, headers) in refused.items():
        # followed as a browser follows redirects: it ends refused (403) or at the sign-in page
        r = (sess or requests).get(f"{page}?probe=refused-{probe}", headers=headers, timeout=30)
        assert r.status_code == 403 or "/hub/login" in r.url, (probe, r.status_code, r.url)
        ws_headers = {**headers, **({"Cookie": cookie_header(sess)} if sess else {})}
        status, reply = ws_round_trip(f"{ws}?probe=refused-{probe}", ws_headers)
        assert status in (302, 403) and reply is None, (probe, status)

    seen = [e for e in double_log(hub) if "uri" in e]
    assert [e for e in seen if "probe=owner" in e["uri"]], seen
    assert not [e for e in seen if "probe=refused" in e["uri"]], "a refused request reached the app"


def test_polling_is_no_activity_and_use_is(hub, rs, who):
    headers = {"Authorization": f"token {who['demo']}"}

    def last_activity():
        return requests.get(f"{rs}api/status", headers=headers, timeout=30).json()["last_activity"]

    requests.get(f"{rs}rstudio/workspace", headers=headers, timeout=30).raise_for_status()
    time.sleep(1.2)
    before = last_activity()
    for _ in range(5):
        assert requests.get(f"{rs}rstudio/events/get_events", headers=headers, timeout=30).status_code == 200
        time.sleep(0.3)
    assert last_activity() == before, "RStudio's event polling counted as activity"
    time.sleep(0.5)
    requests.get(f"{rs}rstudio/workspace", headers=headers, timeout=30).raise_for_status()
    assert last_activity() > before


def test_envs_userid_reaches_the_container(hub, rs):
    c = session_container(hub, "demo", "rs")
    out = c.exec_run(["sh", "-c", 'echo "$USERID:$GROUPID"'], user="1000").output.decode().strip()
    assert out == "1000:1000"
    env = c.attrs["Config"]["Env"]
    assert "USERID=1000" in env and "GROUPID=1000" in env


def test_run_as_root_is_refused_with_its_reason(hub, who):
    r = start(hub, who["demo"], "root", ROOT_REFUSED, "jupyterlab")
    assert r.status_code == 403, r.text
    message = r.json()["message"]
    assert "ai.backend.run-as-root" in message and "allow_root_images" in message
    servers = hub_api(hub, who["demo"], "GET", "users/demo").json()["servers"]
    assert not servers.get("root", {}).get("ready")


def test_run_as_root_only_where_an_admin_allows_it(hub, who):
    start_ready(hub, who["demo"], "rootok", ROOT_ALLOWED, "jupyterlab")
    try:
        c = session_container(hub, "demo", "rootok")
        assert c.attrs["Config"]["User"] in ("0:0", "0")
        ps = c.exec_run(["ps", "-eo", "user=,args="]).output.decode()
        assert any(line.split()[0] == "root" and "jupyterhub-singleuser" in line for line in ps.splitlines()), ps
    finally:
        stop_server(hub, who["demo"], "demo", "rootok")
