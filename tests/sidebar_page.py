"""The Virtual folders sidebar in a JupyterLab page (Playwright): shared by the browser tests and the
sidebar benchmarks."""

from __future__ import annotations


def show_sidebar(page):
    """Open the sidebar's tab (unless it is open) and wait for its first paint; the page."""
    page.wait_for_selector(".jp-LabShell")
    tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='backendai-hub-vfolders']")
    tab.wait_for()
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    page.wait_for_selector(".bhub-Sidebar[data-painted='true']")
    return page
