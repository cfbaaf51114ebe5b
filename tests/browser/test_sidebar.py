"""The Virtual folders sidebar in real sessions, through the real hub, in Chromium: demo creates a
folder, uploads 20 MiB with visible progress and invites manager read-only; manager's sidebar shows
the invitation's badge, manager accepts, sees the file and the write actions greyed with the reason;
a third user sees nothing of it; an upload cut by a page reload resumes and ends with the right
SHA-256; restarting the session with the folder mounted shows it mounted, and the file browser opens it.
Screenshots of each state go to $BACKENDAI_HUB_SCREENSHOTS (default /tmp/bhub-screenshots)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.browser.test_signin import browser, sign_in  # noqa: F401 - the fixture
from tests.hubproc import admin_token, hub_api, hub_fixture, hub_token, run_cli, server_path, service_api, \
    stop_server, wait_ready
from tests.sidebar_page import show_sidebar

pytestmark = [pytest.mark.docker, pytest.mark.browser]

hub = hub_fixture("sidebar")
SMALL = {"resources": {"cpu": 1, "mem": "1g"}}  # two sessions at a time on a 2-core host
SHOTS = Path(os.environ.get("BACKENDAI_HUB_SCREENSHOTS", "/tmp/bhub-screenshots"))
MiB = 1 << 20
FOLDER = "results"
STRANGER = ("stranger", "stranger-password-1")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"sidebar-{name}.png"))


def ok(r, *codes):
    assert r.status_code in (codes or (200, 201, 204)), f"{r.request.method} {r.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


@pytest.fixture(scope="module")
def people(hub):
    """Tokens of demo (A), manager (B) and a third user of the same domain; A and B have a running
    session (a 2-core host holds two: the third user's starts when B's stops)."""
    r = run_cli(hub, "user", "create", STRANGER[0], "--email", "stranger@example.com", "--groups", "default",
                "--password-stdin", stdin=STRANGER[1] + "\n")
    assert r.returncode == 0, r.stderr
    r = run_cli(hub, "keypair", "issue", STRANGER[0])
    assert r.returncode == 0, r.stderr
    admin = admin_token(hub)
    tokens = {"admin": admin}
    for user, password in (("demo", hub.credentials["demo"]["password"]),
                           ("manager", hub.credentials["manager"]["password"]), STRANGER):
        tokens[user] = hub_token(hub, user, password)
    for user in ("demo", "manager"):
        assert hub_api(hub, tokens[user], "POST", server_path(user), json=SMALL).status_code in (201, 202)
    for user in ("demo", "manager"):
        wait_ready(hub, tokens[user], user)
    yield tokens
    for user in ("demo", "manager", STRANGER[0]):
        stop_server(hub, admin, user)


def open_sidebar(browser, hub, user: str, password: str):  # noqa: F811
    """Sign in, open JupyterLab and the Virtual folders panel; wait for its first paint."""
    page = sign_in(browser, hub, user, password)
    page.set_default_timeout(60_000)
    page.goto(f"{hub.url}/user/{user}/lab")
    return show_sidebar(page)




def row(page, name: str, group: str | None = None):
    sel = f".bhub-Group[data-group='{group}'] " if group else ""
    return page.locator(f"{sel}.bhub-Folder[data-name='{name}']")


def open_folder(page, name: str):
    r = row(page, name)
    if r.get_attribute("class").find("bhub-mod-open") < 0:
        r.locator(".bhub-Folder-head").click()
    r.locator(".bhub-Detail").wait_for()
    return r


def dialog_accept(page):
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")


def throttle(page, mib_per_s: float | None):
    """Chromium's own network throttling (DevTools protocol) on this page's requests: slows an upload
    enough to watch it, or to reload the page in the middle of it. None lifts it."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    rate = -1 if mib_per_s is None else int(mib_per_s * MiB)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": rate})
    return cdp


def tus_patches(hub) -> int:
    """The tus PATCHes the service answered so far (its access log, in the hub's log)."""
    return hub.log.read_text(errors="replace").count(" PATCH /services/backendai/folders/_/tus/upload?")


def upload_via_button(page, folder_row, path: Path):
    with page.expect_file_chooser() as chooser:
        folder_row.locator("button[data-action='upload-files']").click()
    chooser.value.set_files(str(path))


def progress_values(page, name: str, until_state: str = "done", timeout: float = 120) -> list[float]:
    """The upload row's progress (aria-valuenow) sampled until it reaches ``until_state``."""
    seen: list[float] = []
    up = page.locator(f".bhub-Upload[data-path='{name}']").last
    up.wait_for()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = up.get_attribute("data-state")
        seen.append(float(up.locator("[role='progressbar']").get_attribute("aria-valuenow")))
        if state == until_state:
            return seen
        assert state != "failed", up.inner_text()
        page.wait_for_timeout(100)
    raise AssertionError(f"upload of {name} not {until_state} in {timeout}s: {up.inner_text()} {seen[-5:]}")


def sha256_at_service(hub, token: str, folder: str, path: str) -> str:
    r = service_api(hub, token, "GET", f"vfolders/{folder}/download", params={"path": path}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    return hashlib.sha256(r.content).hexdigest()


def test_share_a_folder_through_the_sidebar(browser, hub, people, tmp_path):  # noqa: F811
    data = os.urandom(20 * MiB)
    big = tmp_path / "big.bin"
    big.write_bytes(data)

    # A: create the folder in the sidebar
    a = open_sidebar(browser, hub, "demo", hub.credentials["demo"]["password"])
    shot(a, "a-empty")
    a.locator("button[data-do='create']").click()
    a.locator(".jp-Dialog input[name='name']").fill(FOLDER)
    dialog_accept(a)
    mine = row(a, FOLDER, "mine")
    mine.wait_for()
    assert mine.locator(".bhub-Perm").inner_text() in ("rw", "wd")
    open_folder(a, FOLDER)
    assert "Not mounted in this session" in mine.locator(".bhub-Facts-mount").inner_text()

    # A: upload 20 MiB with its progress on screen (Chromium throttled to 5 MiB/s to watch it)
    cdp = throttle(a, 5)
    patches = tus_patches(hub)
    upload_via_button(a, mine, big)
    a.locator(".bhub-Upload[data-path='big.bin'][data-state='uploading']").wait_for()
    a.wait_for_timeout(1200)
    shot(a, "a-uploading")
    status = a.locator(".bhub-Upload[data-path='big.bin'] .bhub-Transfer-status").inner_text()
    assert "of 20 MiB" in status and "/s" in status, status
    seen = progress_values(a, "big.bin")
    cdp.detach()
    assert any(0 < v < 100 for v in seen), seen  # the bar moved through the middle, not just 0 -> 100
    shot(a, "a-uploaded")
    assert sha256_at_service(hub, people["demo"], FOLDER, "big.bin") == hashlib.sha256(data).hexdigest()
    deadline = time.monotonic() + 10  # the access log's line follows the answer
    while tus_patches(hub) - patches < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tus_patches(hub) - patches == 2  # 20 MiB: two parts side by side (8 MiB or more each)
    mine.locator(".bhub-File[data-file='big.bin']").wait_for()

    # A: invite B read-only
    mine.locator("button[data-action='invite']").click()
    a.locator(".jp-Dialog input[name='emails']").fill("manager@example.com")
    a.locator(".jp-Dialog select[name='permission']").select_option("ro")
    dialog_accept(a)
    a.locator(".bhub-Notice", has_text="Invited manager@example.com").wait_for()

    # B: the badge, accept, the file, the write actions greyed with the reason
    b = open_sidebar(browser, hub, "manager", hub.credentials["manager"]["password"])
    b.locator(".bhub-Badge[data-count='1']").wait_for()
    assert b.locator(".lm-TabBar-tab[data-id='backendai-hub-vfolders']").get_attribute(
        "data-bhub-invitations") == "1"
    assert row(b, FOLDER).count() == 0
    shot(b, "b-invited")
    b.locator("button[data-do='invitations']").click()
    inv = b.locator(".bhub-Invitation", has_text=FOLDER)
    assert "demo@example.com invites you to 'results' (read-only)" in inv.inner_text()
    inv.locator("[data-answer='accept']").click()
    shared = row(b, FOLDER, "shared")
    shared.wait_for()
    b.locator(".bhub-Badge[data-count='0']").wait_for()
    open_folder(b, FOLDER)
    assert shared.locator(".bhub-Perm").inner_text() == "ro"
    shared.locator(".bhub-File[data-file='big.bin']").wait_for()
    assert "20 MiB" in shared.locator(".bhub-File[data-file='big.bin']").inner_text()
    for action in ("upload-files", "upload-folder", "rename", "delete"):
        button = shared.locator(f"button[data-action='{action}']")
        assert button.is_disabled(), action
        reason = button.get_attribute("title")
        assert reason and reason[0].isupper() and reason.endswith("."), (action, reason)
    assert shared.locator("button[data-action='download']").is_enabled()
    reasons = shared.locator(".bhub-Reasons").inner_text()
    assert "Upload files:" in reasons and "Rename:" in reasons, reasons
    shot(b, "b-read-only")

    # a third user: nothing of A's
    b.context.close()
    stop_server(hub, people["admin"], "manager")
    assert hub_api(hub, people[STRANGER[0]], "POST", server_path(STRANGER[0]), json=SMALL).status_code in (201, 202)
    wait_ready(hub, people[STRANGER[0]], STRANGER[0])
    c = open_sidebar(browser, hub, *STRANGER)
    assert row(c, FOLDER).count() == 0
    assert c.locator(".bhub-Badge").get_attribute("data-count") == "0"
    assert FOLDER not in c.locator(".bhub-Sidebar-body").inner_text()
    shot(c, "c-nothing")
    c.context.close()
    stop_server(hub, people["admin"], STRANGER[0])
    a.context.close()


def test_an_upload_cut_by_a_reload_resumes_with_the_right_sha256(browser, hub, people, tmp_path):  # noqa: F811
    data = os.urandom(20 * MiB)
    big = tmp_path / "resume.bin"
    big.write_bytes(data)
    a = open_sidebar(browser, hub, "demo", hub.credentials["demo"]["password"])
    mine = open_folder(a, FOLDER)
    throttle(a, 2)
    upload_via_button(a, mine, big)
    # wait until a good part is on the server, then reload in the middle
    up = a.locator(".bhub-Upload[data-path='resume.bin']")
    deadline = time.monotonic() + 60
    while float(up.locator("[role='progressbar']").get_attribute("aria-valuenow")) < 25:
        assert time.monotonic() < deadline, up.inner_text()
        a.wait_for_timeout(200)
    a.wait_for_timeout(1500)  # the store notes the offset once a second
    a.reload()
    show_sidebar(a)
    pending = a.locator(".bhub-Pending[data-path='resume.bin']")
    pending.wait_for()
    text = pending.inner_text()
    assert "Interrupted at" in text and "Pick the same file again to resume" in text, text
    at = float(text.split("Interrupted at ")[1].split(" %")[0])
    assert 10 <= at < 100, text
    shot(a, "a-interrupted")
    # the same file again; no throttle now
    with a.expect_file_chooser() as chooser:
        pending.locator("[data-do='resume']").click()
    chooser.value.set_files(str(big))
    seen = progress_values(a, "resume.bin")
    assert seen[0] >= at - 1 or min(seen) >= at - 1, (at, seen[:5])  # continued, did not start over
    shot(a, "a-resumed")
    assert sha256_at_service(hub, people["demo"], FOLDER, "resume.bin") == hashlib.sha256(data).hexdigest()
    assert a.locator(".bhub-Pending").count() == 0
    a.context.close()


def test_restart_with_the_folder_mounted_and_open_it_in_the_file_browser(browser, hub, people):  # noqa: F811
    a = open_sidebar(browser, hub, "demo", hub.credentials["demo"]["password"])
    mine = open_folder(a, FOLDER)
    mine.locator("button[data-action='restart']").click()
    body = a.locator(".jp-Dialog-body").inner_text()
    assert "kernel" in body and "stops" in body, body
    shot(a, "a-restart-confirm")
    dialog_accept(a)
    # the page goes to the hub's spawn-pending page and comes back to JupyterLab when the server is up
    a.wait_for_url("**/spawn-pending/**", timeout=60_000)
    a.wait_for_url("**/user/demo/lab**", timeout=120_000)
    show_sidebar(a)
    mine = open_folder(a, FOLDER)
    assert mine.locator(".bhub-Facts-mount").inner_text() == f"Mounted at /home/work/{FOLDER} (read-write)"
    assert "mounted" in mine.locator(".bhub-MountMark").inner_text()
    shot(a, "a-mounted")
    mine.locator("button[data-action='open']").click()
    a.locator(".jp-FileBrowser .jp-BreadCrumbs", has_text=FOLDER).wait_for()
    a.locator(".jp-DirListing-item[title*='big.bin'], .jp-DirListing-item:has-text('big.bin')").first.wait_for()
    shot(a, "a-file-browser")
    a.context.close()
