"""What the sidebar benchmarks share: a real hub (its own state dir), demo's JupyterLab session on
the notebook image (the labextension wheel in it), and a Chromium page with the sidebar open."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from .common import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.sidebar_page import show_sidebar  # noqa: E402 - also sidebar_paint's

SMALL = {"resources": {"cpu": 1, "mem": "2g"}}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def hub_with_session(prefix: str, max_folders: int = 20, extra_env: dict | None = None):
    """A hub with demo's session running; demo may own ``max_folders`` folders, none with a quota.
    ``extra_env`` goes to the hub (``sidebar_config.py`` reads BENCH_SIDEBAR_LISTENER_PORT). Yields
    (hub, tokens)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.hubproc import HubProcess, admin_token, hub_api, hub_token, run_cli, server_path, stop_server, \
        wait_ready

    with tempfile.TemporaryDirectory(prefix=prefix) as state:
        hub = HubProcess(Path(state), extra_env={"BACKENDAI_HUB_CULL_INTERVAL": "3600",
                                                 "BACKENDAI_HUB_EXTRA_CONFIG": str(Path(__file__).with_name(
                                                     "sidebar_config.py")), **(extra_env or {})})
        hub.start(timeout=90)
        try:
            r = run_cli(hub, "policy", "update", "default", "-k", "user", "--max-vfolder-count", str(max_folders),
                        "--max-quota-size", "none")
            assert r.returncode == 0, r.stderr
            admin = admin_token(hub)
            demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
            r = hub_api(hub, demo, "POST", server_path("demo"), json=SMALL)
            assert r.status_code in (201, 202), r.text
            wait_ready(hub, demo, timeout=180)
            yield hub, {"admin": admin, "demo": demo}
            stop_server(hub, admin, "demo")
        finally:
            hub.stop()


@contextlib.contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def lab_page(browser, hub, user: str = "demo"):
    """Signed in, JupyterLab open, the sidebar shown and painted."""
    page = browser.new_context().new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", hub.credentials[user]["password"])
    page.click("#login_submit")
    page.wait_for_load_state()
    page.goto(f"{hub.url}/user/{user}/lab")
    show_sidebar(page)
    return page


