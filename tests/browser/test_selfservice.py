"""The self-service page at /services/backendai/ in a real Chromium, behind the demo hub's real proxy:
a user issues a keypair, copies its lines, uses them with the official client, revokes it; sees and
stops their sessions; a domain admin sees their domain's; the secret is never shown again."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.browser.test_signin import browser  # noqa: F401 - the fixture
from tests.hubproc import hub_api, hub_token, run_cli, server_path, service_api, stop_server, wait_ready

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("BACKENDAI_HUB_SCREENSHOTS", "/tmp/bhub-screenshots")) / "selfservice"
SMALL = {"cpu": 1, "mem": "1g"}


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_page(browser, hub, who: str, password: str | None = None):  # noqa: F811
    """Sign in to the hub as ``who`` in a fresh context (clipboard allowed), then follow the nav link."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", who)
    page.fill("#password_input", password or hub.credentials[who]["password"])
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")
    link = page.locator("#backendai-selfservice-link")
    assert link.inner_text().strip() == "Keys & sessions"
    shot(page, f"0-hub-home-{who}")
    link.click()  # the hub's OAuth: authorize, callback, the page
    page.wait_for_url("**/services/backendai/")
    page.wait_for_selector("h1:has-text('Your keys, sessions and folders')")
    return page


def client_env(lines: str, home: Path) -> dict[str, str]:
    """The environment the copied ``export NAME=value`` lines give a shell."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    for line in lines.strip().splitlines():
        m = re.fullmatch(r"export (BACKEND_[A-Z_]+)=(\S+)", line.strip())
        assert m, line
        env[m[1]] = m[2]
    return env


def backend_ai(exe: Path, env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**env, "PATH": f"{exe.parent}:{env['PATH']}"}
    return subprocess.run([str(exe), *args], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=90)


def make_user(hub, name: str, password: str) -> None:
    r = run_cli(hub, "user", "create", name, "--email", f"{name}@example.com", "-d", "default", "--password-stdin",
                stdin=password + "\n")
    assert r.returncode == 0 or "already exists" in r.stderr, r.stderr
    assert hub.login(name, password)[1].status_code == 302  # the hub knows them once they signed in


def test_issue_copy_use_with_the_official_client_revoke(browser, demo_hub, backend_ai_cli, tmp_path):  # noqa: F811
    page = open_page(browser, demo_hub, "demo")
    assert page.locator("#new-key").is_hidden()
    main_key = demo_hub.credentials["demo"]["access_key"]
    assert page.locator(f"#keys tr[data-access-key='{main_key}'] .tag").inner_text() == "main"
    for who in ("admin", "manager"):  # a user sees only their own keys
        assert demo_hub.credentials[who]["access_key"] not in page.content()
    shot(page, "1-opened")

    # issue with the keyboard alone: Tab reaches the button (skip link, nav, ...), its focus shows, Enter
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "issue":
            break
    else:
        raise AssertionError("Tab never reaches the issue button")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    page.keyboard.press("Enter")
    page.wait_for_selector("#new-key:not([hidden])")
    access = page.inner_text("#new-access").strip()
    secret = page.inner_text("#new-secret").strip()
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", access) and len(secret) >= 40
    assert page.locator(f"#keys tr[data-access-key='{access}'] .state").inner_text() == "active"
    assert "Copy the secret key now" in page.inner_text("#new-key")
    shot(page, "2-issued")

    page.click("#copy-lines")
    page.wait_for_selector("#copy-lines:has-text('Copied')")
    lines = page.evaluate("navigator.clipboard.readText()")
    env = client_env(lines, tmp_path)
    assert env["BACKEND_ENDPOINT"] == f"{demo_hub.url}/services/backendai"
    assert (env["BACKEND_ENDPOINT_TYPE"], env["BACKEND_ACCESS_KEY"], env["BACKEND_SECRET_KEY"]) == ("api", access, secret)
    page.click("button[data-copy='new-secret']")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # the official client with exactly those lines: make a folder, list it
    out = backend_ai(backend_ai_cli, env, tmp_path, "vfolder", "create", "from-page", "local")
    assert out.returncode == 0, out.stdout + out.stderr
    out = backend_ai(backend_ai_cli, env, tmp_path, "vfolder", "list")
    assert out.returncode == 0 and "from-page" in out.stdout, out.stdout + out.stderr
    (tmp_path / "blob.bin").write_bytes(os.urandom(3 << 20))
    out = backend_ai(backend_ai_cli, env, tmp_path, "vfolder", "upload", "from-page", "blob.bin")
    assert out.returncode == 0, out.stdout + out.stderr

    # a reload forgets the secret: only the access key is rendered
    page.reload()
    page.wait_for_selector("#keys")
    html = page.content()
    assert secret not in html and access in html
    assert page.locator("#new-key").is_hidden()
    folder = page.locator("#folder-table tr[data-folder='from-page']")
    assert folder.locator(".used").inner_text() == "3.0 MiB"  # its usage, against its quota
    assert "10.0 GiB" in folder.inner_text() and folder.locator("td").last.inner_text() == "1"
    shot(page, "3-reloaded")

    # revoke (confirm dialog accepted): the client is refused from then on
    page.once("dialog", lambda d: d.accept())
    page.click(f"button.revoke[data-access-key='{access}']")
    page.wait_for_selector(f"#keys tr[data-access-key='{access}'] .state:has-text('revoked')")
    assert "Revoked keypair" in page.inner_text("#status")
    shot(page, "4-revoked")
    out = backend_ai(backend_ai_cli, env, tmp_path, "vfolder", "list")
    assert out.returncode != 0 or "from-page" not in out.stdout, out.stdout
    assert "401" in out.stdout + out.stderr and "inactive" in out.stdout + out.stderr, out.stdout + out.stderr
    page.reload()
    assert page.locator(f"#keys tr[data-access-key='{access}'] .state").inner_text() == "revoked"
    assert page.locator(f"button.revoke[data-access-key='{access}']").count() == 0
    assert secret not in page.content()

    # nowhere else either: not in the hub's and service's log, not in the audit log
    assert secret not in demo_hub.log.read_text(errors="replace")
    audit = run_cli(demo_hub, "-o", "json", "audit", "list", "--entity-type", "keypair", "--limit", "1000")
    assert audit.returncode == 0, audit.stderr
    rows = [r for r in json.loads(audit.stdout) if r["entity_id"] == access]
    assert {r["operation"] for r in rows} >= {"create", "update"} and secret not in audit.stdout


def test_sessions_own_and_domain_scope_and_stop_from_the_page(browser, demo_hub, docker_available):  # noqa: F811
    make_user(demo_hub, "neighbour", "neighbour-password")
    demo = hub_token(demo_hub, "demo", demo_hub.credentials["demo"]["password"])
    r = service_api(demo_hub, demo, "POST", "vfolders", json={"name": "session-data"})
    assert r.status_code in (201, 409), r.text
    r = hub_api(demo_hub, demo, "POST", server_path("demo", "pagework"),
                json={"group": "ml", "resources": SMALL, "vfolders": ["session-data"]})
    assert r.status_code in (201, 202), r.text
    try:
        wait_ready(demo_hub, demo, name="pagework", timeout=120)
        page = open_page(browser, demo_hub, "demo")
        row = page.locator("#own-sessions tr", has_text="pagework")
        assert row.count() == 1
        text = row.inner_text()
        assert "backendai-hub/notebook" in text and "cpu=1" in text and "mem=1g" in text and "ml" in text
        assert re.search(r"< 1 min|\d+ min", text), text
        assert "session-data → /home/work/session-data" in text, text  # its mounts
        assert page.locator("#scope-sessions").count() == 0  # a user has no wider scope
        shot(page, "5-sessions")

        # the domain admin sees it among their domain's, with its owner; a neighbour sees none of it
        admin_page = open_page(browser, demo_hub, "manager")
        scoped = admin_page.locator("#scope-sessions tr", has_text="pagework")
        assert scoped.count() == 1 and "demo" in scoped.inner_text()
        assert "Other sessions in domain default" in admin_page.inner_text("#sessions")
        shot(admin_page, "6-domain-admin")
        other = open_page(browser, demo_hub, "neighbour", "neighbour-password")
        assert "pagework" not in other.content()
        assert other.locator("#own-sessions tr.empty").count() == 1
        assert demo_hub.credentials["demo"]["access_key"] not in other.content()

        # stop it from the owner's page, with the keyboard, confirming the dialog
        page.once("dialog", lambda d: d.accept())
        page.locator("#own-sessions tr", has_text="pagework").locator("button.stop").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#status:has-text('pagework')")
        assert re.search(r"Stopp(ed|ing) session pagework", page.inner_text("#status")), page.inner_text("#status")
        shot(page, "7-stopped")
        deadline = time.monotonic() + 60
        while "pagework" in hub_api(demo_hub, demo, "GET", "users/demo").json()["servers"]:
            assert time.monotonic() < deadline, "the hub still has the server"
            time.sleep(0.5)
        page.reload()
        assert page.locator("#own-sessions tr", has_text="pagework").count() == 0

        # the page's usage chart shows the session's core-hours (closed at its stop), as the owner sees it
        plot = page.locator("img#usage-own")
        plot.scroll_into_view_if_needed()
        assert plot.evaluate("img => img.complete && img.naturalWidth > 0"), "the usage chart did not load"
        svg = page.request.get(urljoin(page.url, plot.get_attribute("src")))
        assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert "no usage in this period" not in svg.text() and ">demo</text>" in svg.text()  # its bar's legend
        assert page.locator("img#usage-scope").count() == 0  # a user has no wider scope
        shot(page, "8-usage")
        admin_page.reload()
        assert admin_page.locator("img#usage-scope").evaluate("img => img.naturalWidth > 0")
    finally:
        stop_server(demo_hub, demo, name="pagework")


# -- the handlers themselves, with a plain HTTP client through the proxy ---------------------------------

def signed_in_page(hub, who: str) -> tuple[requests.Session, str]:
    """A requests session signed in to the hub and through the service's OAuth; (session, page's XSRF token)."""
    s, r = hub.login(who, hub.credentials[who]["password"])
    assert r.status_code == 302
    r = s.get(f"{hub.url}/services/backendai/", headers={"Accept": "text/html"}, timeout=30)
    assert r.status_code == 200 and r.url == f"{hub.url}/services/backendai/", (r.status_code, r.url)
    return s, re.search(r'<meta name="xsrf-token" content="([^"]+)"', r.text)[1]


def test_without_a_cookie_the_page_sends_the_browser_to_sign_in(demo_hub):
    r = requests.get(f"{demo_hub.url}/services/backendai/", headers={"Accept": "text/html"}, timeout=10,
                     allow_redirects=False)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize?" in r.headers["Location"]
    # the Backend.AI client's handshake at the same address is untouched
    r = requests.get(f"{demo_hub.url}/services/backendai/", timeout=10)
    assert r.status_code == 200 and r.json()["version"].startswith("v7.")


def test_the_page_has_a_strict_policy_and_no_secret(demo_hub):
    s, _ = signed_in_page(demo_hub, "demo")
    r = s.get(f"{demo_hub.url}/services/backendai/", headers={"Accept": "text/html"}, timeout=10)
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["Cache-Control"] == "no-store" and "<script>" not in r.text
    assert demo_hub.credentials["demo"]["secret_key"] not in r.text


def test_cookie_writes_need_the_xsrf_token(demo_hub):
    s, xsrf = signed_in_page(demo_hub, "demo")
    api = f"{demo_hub.url}/services/backendai/api/v1"
    r = s.post(f"{api}/keypairs", json={}, timeout=10)
    assert r.status_code == 403 and "XSRF" in r.json()["message"], r.text
    r = s.post(f"{api}/keypairs", json={}, headers={"X-XSRFToken": "not-the-token"}, timeout=10)
    assert r.status_code == 403, r.text
    r = s.post(f"{api}/keypairs", json={}, headers={"X-XSRFToken": xsrf}, timeout=10)
    assert r.status_code == 201 and r.json()["user"] == "demo", r.text
    made = r.json()["access_key"]
    r = s.patch(f"{api}/keypairs/{made}", json={"is_active": False}, timeout=10)
    assert r.status_code == 403  # the revoke too
    assert json.loads(run_cli(demo_hub, "-o", "json", "keypair", "show", made).stdout)["is_active"] is True


def test_another_users_keypair_cannot_be_revoked_from_a_page(demo_hub):
    s, xsrf = signed_in_page(demo_hub, "demo")
    theirs = demo_hub.credentials["manager"]["access_key"]
    r = s.patch(f"{demo_hub.url}/services/backendai/api/v1/keypairs/{theirs}", json={"is_active": False},
                headers={"X-XSRFToken": xsrf}, timeout=10)
    assert r.status_code == 404, r.text  # not theirs to see
    assert json.loads(run_cli(demo_hub, "-o", "json", "keypair", "show", theirs).stdout)["is_active"] is True
