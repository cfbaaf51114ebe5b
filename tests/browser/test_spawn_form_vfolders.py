"""The spawn form's folder checklist in a real Chromium on the demo hub: the user's mountable folders with
their permissions; the ones ticked are mounted in the session that starts."""

import os

import pytest
import requests

from tests.browser.test_signin import browser, sign_in  # noqa: F401 - the Chromium fixture
from tests.hubproc import hub_token, service_api, session_container, stop_server

pytestmark = pytest.mark.browser


def test_the_spawn_form_lists_folders_to_tick_and_mounts_them(browser, demo_hub, docker_available):  # noqa: F811
    demo = hub_token(demo_hub, "demo", demo_hub.credentials["demo"]["password"])
    admin = hub_token(demo_hub, "admin", demo_hub.credentials["admin"]["password"])
    made = {}
    for name in ("datasets", "notes"):
        r = service_api(demo_hub, demo, "POST", "vfolders", json={"name": name})
        assert r.status_code in (201, 409), r.text
        made[name] = r.json()["id"] if r.status_code == 201 else next(
            f["id"] for f in service_api(demo_hub, demo, "GET", "vfolders").json()["items"] if f["name"] == name)
    r = service_api(demo_hub, admin, "POST", "vfolders", json={"name": "team-ref", "group": "ml", "permission": "ro"})
    assert r.status_code in (201, 409), r.text
    page = sign_in(browser, demo_hub, "demo", demo_hub.credentials["demo"]["password"])
    page.goto(f"{demo_hub.url}/hub/spawn")
    page.wait_for_selector("#bai-vfolders")
    labels = [" ".join(t.split()) for t in page.locator("#bai-vfolders .form-check-label").all_inner_texts()]
    assert "datasets wd yours" in labels and "notes wd yours" in labels, labels
    assert "team-ref ro your group's" in labels, labels
    page.locator("#bai-vfolders").screenshot(path=str(demo_hub.state / "spawn-form-vfolders.png"))
    shots = os.environ.get("BACKENDAI_HUB_SCREENSHOTS")
    if shots:
        page.screenshot(path=os.path.join(shots, "spawn-form.png"), full_page=True)
    page.check(f"#bai-vf-{made['datasets']}")
    page.check("#bai-preset-small")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/demo/lab**", timeout=120_000)
    try:
        c = session_container(demo_hub, "demo")
        mounts = {m["Destination"]: m["RW"] for m in c.attrs["Mounts"] if m["Destination"].startswith("/home/work/")}
        assert mounts.get("/home/work/datasets") is True and "/home/work/notes" not in mounts, mounts
        servers = requests.get(f"{demo_hub.url}/hub/api/users/demo", headers={"Authorization": f"token {admin}"},
                               timeout=10).json()["servers"]
        assert servers[""]["user_options"]["vfolders"] == [made["datasets"]]
    finally:
        stop_server(demo_hub, admin, "demo")
