"""The R image in Chromium: JupyterLab opens with no news popup (the images are air-gapped, news and update
checks are off), an R notebook cell ``sum(1:10)`` prints 55, and the Shiny app at <session>/shiny/ echoes
what is typed over its websocket through the hub proxy."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import requests

from tests.browser.test_signin import browser, sign_in  # noqa: F401 - the fixture
from tests.hubproc import admin_token, hub_api, hub_fixture, hub_token, server_path, stop_server, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.browser]

R_IMAGE = "backendai-hub/r:latest"
SHOTS = Path(os.environ.get("BACKENDAI_HUB_SCREENSHOTS", "/tmp/bhub-screenshots"))
hub = hub_fixture("apps-r")
NEWS = "Would you like to get notified about official Jupyter news?"


@pytest.fixture(scope="module")
def session(hub, docker_available):
    import docker

    docker.from_env().images.get(R_IMAGE)  # built by `bash kernels/build.sh r` (make images)
    admin_token(hub)
    demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
    r = hub_api(hub, demo, "POST", server_path("demo", "r"),
                json={"image": R_IMAGE, "app": "jupyterlab", "resources": {"cpu": 1, "mem": "1g"}})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, demo, name="r", timeout=120)
    nb = {"type": "notebook", "content": {
        "cells": [{"cell_type": "code", "id": "c0", "source": "sum(1:10)", "metadata": {}, "outputs": [],
                   "execution_count": None}],
        "metadata": {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}},
        "nbformat": 4, "nbformat_minor": 5}}
    r = requests.put(f"{hub.url}/user/demo/r/api/contents/sum.ipynb", json=nb,
                     headers={"Authorization": f"token {demo}"}, timeout=30)
    assert r.status_code in (200, 201), r.text
    yield demo
    stop_server(hub, demo, "demo", "r")


def test_r_kernel_prints_55_and_no_news_popup(browser, hub, session):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings = requests.get(f"{hub.url}/user/demo/r/lab/api/settings/@jupyterlab/apputils-extension:notification",
                            headers={"Authorization": f"token {session}"}, timeout=30).json()
    # the image's overrides.json becomes the schema's defaults (no user setting is stored)
    props = settings["schema"]["properties"]
    assert props["fetchNews"]["default"] == "false" and props["checkForUpdates"]["default"] is False, props

    page = sign_in(browser, hub, "demo", hub.credentials["demo"]["password"])
    page.set_default_timeout(90_000)
    page.goto(f"{hub.url}/user/demo/r/lab/tree/sum.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
    cell = page.locator(".jp-Notebook .jp-Cell").first
    deadline = time.monotonic() + 90
    while "55" not in cell.locator(".jp-OutputArea").inner_text():
        if time.monotonic() > deadline:
            page.screenshot(path=str(SHOTS / "r-kernel-no-55.png"))
            raise AssertionError(f"no 55: {cell.inner_text()!r}")
        if not re.search(r"\[[\d*]+\]", cell.locator(".jp-InputPrompt").inner_text()):
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
        time.sleep(1)
    # IRkernel's rich display of a length-1 vector is the bare value (plain text would be "[1] 55")
    assert cell.locator(".jp-OutputArea-output").inner_text().strip() in ("55", "[1] 55")
    assert "R" in page.locator(".jp-KernelName, .jp-Toolbar-kernelName").first.inner_text()
    time.sleep(3)  # the news question, when asked, comes a moment after the page settles
    page.screenshot(path=str(SHOTS / "r-kernel-55.png"))
    assert page.get_by_text(NEWS).count() == 0
    assert page.locator(".jp-Notification-Toast, .Toastify__toast").count() == 0


def test_shiny_echoes_in_the_browser(browser, hub, session):  # noqa: F811
    page = sign_in(browser, hub, "demo", hub.credentials["demo"]["password"])
    page.set_default_timeout(90_000)
    page.goto(f"{hub.url}/user/demo/r/shiny/")
    page.wait_for_selector("#msg")
    page.fill("#msg", "through the hub proxy")
    page.wait_for_function("document.querySelector('#echo').textContent.includes('echo:through the hub proxy')")
    page.screenshot(path=str(SHOTS / "shiny-echo.png"))
    assert page.locator("#echo").inner_text() == "echo:through the hub proxy"


def test_the_launcher_offers_shiny_the_r_kernel_and_a_terminal(browser, hub, session):  # noqa: F811
    """JupyterLab's launcher lists the session's apps (jupyter-server-proxy entry points) beside its kernels
    and the terminal; RStudio's card is there only where the image has rserver (this R image has not)."""
    page = sign_in(browser, hub, "demo", hub.credentials["demo"]["password"])
    page.set_default_timeout(90_000)
    page.goto(f"{hub.url}/user/demo/r/lab?reset")
    page.wait_for_selector(".jp-Launcher .jp-LauncherCard")
    cards = page.locator(".jp-Launcher .jp-LauncherCard")
    # each card's label (its text also holds the icon's letter, e.g. "S" for Shiny)
    labels = [cards.nth(i).locator(".jp-LauncherCard-label").inner_text().strip() for i in range(cards.count())]
    page.screenshot(path=str(SHOTS / "r-launcher.png"))
    # an app that opens in a browser tab of its own is labelled "Shiny [↗]"
    assert any(label.startswith("Shiny") for label in labels) and "Terminal" in labels, labels
    assert "R" in labels, labels  # IRkernel's notebook and console cards
    assert not any(label.startswith("RStudio") for label in labels), labels
    with page.context.expect_page() as opened:
        cards.filter(has_text="Shiny").first.click()
    app = opened.value
    app.wait_for_selector("#msg")
    assert app.url == f"{hub.url}/user/demo/r/shiny/", app.url


def test_home_page_links_to_the_sessions_app(browser, hub, session):  # noqa: F811
    r = hub_api(hub, session, "POST", server_path("demo", "app"),
                json={"image": R_IMAGE, "app": "shiny", "resources": {"cpu": 1, "mem": "1g"}})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, session, name="app", timeout=120)
    try:
        page = sign_in(browser, hub, "demo", hub.credentials["demo"]["password"])
        page.set_default_timeout(90_000)
        page.goto(f"{hub.url}/hub/home")
        link = page.locator("#backendai-apps tr[data-server-name='app'] a.backendai-app-link")
        assert link.get_attribute("href") == "/user/demo/app/shiny/"
        assert page.locator("#backendai-apps tr[data-server-name='r']").count() == 0  # started on JupyterLab
        page.screenshot(path=str(SHOTS / "home-apps.png"), full_page=True)
        link.click()
        page.wait_for_selector("#msg")
        assert page.url == f"{hub.url}/user/demo/app/shiny/"
    finally:
        stop_server(hub, session, "demo", "app")
