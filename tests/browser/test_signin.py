"""A person signs in to the demo hub in a real Chromium and sees what their role allows."""

import os
import re

import pytest

from tests.conftest import unavailable

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(path):
        unavailable("Chromium", "run `make test` (it installs Debian's chromium) or set CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(browser, hub, username, password):
    page = browser.new_context().new_page()
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_load_state()
    return page


def test_admin_sees_the_admin_link(browser, demo_hub, tmp_path):
    page = sign_in(browser, demo_hub, "admin", demo_hub.credentials["admin"]["password"])
    page.goto(f"{demo_hub.url}/hub/home")
    assert page.locator("a[href$='/hub/admin']").count() >= 1
    page.screenshot(path=str(tmp_path / "admin-home.png"))


def test_user_does_not_see_the_admin_link(browser, demo_hub):
    page = sign_in(browser, demo_hub, "demo", demo_hub.credentials["demo"]["password"])
    page.goto(f"{demo_hub.url}/hub/home")
    assert "/hub/home" in page.url
    assert page.locator("a[href$='/hub/admin']").count() == 0


def test_wrong_password_shows_an_error(browser, demo_hub):
    page = sign_in(browser, demo_hub, "demo", "wrong-password")
    assert "/hub/login" in page.url
    assert "Invalid username or password" in page.content()


def test_domain_admin_manages_only_their_domain_in_the_admin_page(browser, demo_hub):
    from tests.hubproc import run_cli

    for args in (["domain", "create", "elsewhere"],
                 ["user", "create", "stranger", "--email", "stranger@example.com", "-d", "elsewhere",
                  "--password-stdin"]):
        r = run_cli(demo_hub, *args, stdin="stranger-password\n")
        assert r.returncode == 0 or "already exists" in r.stderr
    # users exist in the hub once they have signed in
    assert demo_hub.login("stranger", "stranger-password")[1].status_code == 302
    assert demo_hub.login("demo", demo_hub.credentials["demo"]["password"])[1].status_code == 302
    page = sign_in(browser, demo_hub, "manager", demo_hub.credentials["manager"]["password"])
    page.goto(f"{demo_hub.url}/hub/home")
    assert page.locator("a[href$='/hub/admin']").count() >= 1
    page.goto(f"{demo_hub.url}/hub/admin")
    page.wait_for_selector("text=Displaying")
    table = page.inner_text("table")
    assert "manager" in table and "demo" in table
    assert "stranger" not in table  # another domain
    assert not re.search(r"\badmin\b", table)  # a superadmin
    page.screenshot(path=str(demo_hub.state / "domain-admin.png"))


def test_options_form_offers_what_the_policy_allows_and_starts_jupyterlab(browser, demo_hub, docker_available):
    page = sign_in(browser, demo_hub, "demo", demo_hub.credentials["demo"]["password"])
    page.goto(f"{demo_hub.url}/hub/spawn")
    page.wait_for_selector("#bai-image")
    images = page.locator("#bai-image option").all_inner_texts()
    assert any("backendai-hub/notebook:latest" in i and "python:3.11" in i for i in images)
    assert page.locator("#bai-group option").all_inner_texts() == ["default", "ml"]
    presets = page.locator("input[name=preset]").evaluate_all("els => els.map(e => e.value)")
    assert presets == ["small", "medium"]  # 'large' (mem=16g) exceeds demo's keypair limit of mem=8g
    assert "cpu=4" in page.inner_text("legend")
    page.check("#bai-preset-small")
    page.select_option("#bai-group", "ml")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/demo/lab**", timeout=120_000)
    page.wait_for_selector(".jp-LabShell, #jp-main-dock-panel, .lm-DockPanel", timeout=120_000)
    page.screenshot(path=str(demo_hub.state / "jupyterlab.png"))
    import requests

    from tests.hubproc import hub_token

    token = hub_token(demo_hub, "admin", demo_hub.credentials["admin"]["password"])
    servers = requests.get(f"{demo_hub.url}/hub/api/users/demo", headers={"Authorization": f"token {token}"},
                           timeout=10).json()["servers"]
    assert servers[""]["user_options"]["group"] == "ml"
    assert servers[""]["user_options"]["resources"] == "cpu=1,mem=1g"  # the 'small' preset
    requests.delete(f"{demo_hub.url}/hub/api/users/demo/server", headers={"Authorization": f"token {token}"},
                    timeout=60)
