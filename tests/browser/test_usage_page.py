"""The usage page in a real Chromium on a real hub: an admin sees GPU-hours per group, core-hours per
domain and the top users; a user sees only their own; the period picker works from the keyboard."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from backendai_hub.db import Database
from backendai_hub.models import Group, KernelSession, SessionStatus, User
from backendai_hub.usage import accounting as A
from backendai_hub.usage.accounting import Counters
from tests.browser.test_signin import browser, sign_in  # noqa: F401 - the fixture
from tests.hubproc import hub_fixture

pytestmark = pytest.mark.browser

hub = hub_fixture("usage-page")
GiB = 1 << 30
# (user, group, hours ago it started, hours, cpu, GPUs): three weeks of sessions
PLAN = [(u, g, 24 * d + off, h, cpu, gpu)
        for d in range(21)
        for u, g, off, h, cpu, gpu in (("demo", "ml", 3, 5, 4, 2 if d % 3 else 1), ("demo", "default", 10, 2, 1, 0),
                                       ("manager", "default", 6, 3 + d % 4, 2, 1 if d % 2 else 0),
                                       ("admin", "default", 14, 1, 8, 0))]


@pytest.fixture(scope="module")
def usage_hub(hub):
    db = Database(url=f"sqlite:///{hub.state / 'backendai_hub.sqlite'}",
                  crypt_key_file=str(hub.state / "backendai_hub.key"))
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    try:
        for user, group, ago, hours, cpu, gpu in PLAN:
            start = now - timedelta(hours=ago)
            with db.session() as s:
                u = s.scalars(select(User).where(User.username == user)).one()
                g = s.scalars(select(Group).where(Group.name == group)).one()
                row = KernelSession(user_id=u.id, server_name=f"past-{ago}", access_key=u.main_access_key or
                                    u.keypairs[0].access_key, group_id=g.id, domain_id=u.domain_id,
                                    image="backendai-hub/notebook:latest", status=SessionStatus.terminated,
                                    slots={"cpu": str(cpu), "mem": str(4 * GiB), **({"cuda.device": str(gpu)} if gpu else {})},
                                    allocation={}, created_at=start, started_at=start,
                                    terminated_at=start + timedelta(hours=hours))
                s.add(row)
                s.flush()
                A.record(s, row.id, start + timedelta(hours=hours),
                         Counters(cpu_seconds=cpu * hours * 1800, mem_bytes=2 * GiB), final=True)
    finally:
        db.dispose()
    return hub


def open_usage(browser, hub, who, query=""):  # noqa: F811 - the fixture
    page = sign_in(browser, hub, who, hub.credentials[who]["password"])
    page.goto(f"{hub.url}/services/backendai/usage{query}")
    page.wait_for_selector("main section svg")  # signed in through the hub's OAuth, back on the page
    return page


def test_admin_sees_groups_domains_and_top_users(browser, usage_hub, tmp_path):  # noqa: F811
    page = open_usage(browser, usage_hub, "admin")
    text = page.inner_text("main")
    assert "usage of every domain" in text
    assert page.locator("main section svg").count() == 4
    svgs = page.locator("main section svg").all_text_contents()
    assert "GPU-hours per group" in svgs[0] and "default/ml" in svgs[0] and "default/default" in svgs[0]
    assert "Core-hours per domain" in svgs[1] and "default" in svgs[1]
    assert "Top users by GPU-hours" in svgs[2] and "demo" in svgs[2] and "manager" in svgs[2]
    table = page.inner_text("table")
    assert [line.split("\t")[0] for line in table.splitlines()[2:]] == ["demo", "manager", "admin"]
    page.set_viewport_size({"width": 1280, "height": 900})
    shot = usage_hub.state / "usage-admin.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, tmp_path / "usage-admin.png")
    # the period picker, from the keyboard: focus the period, pick the last 7 days, submit
    page.focus("#period")
    page.keyboard.press("Home")  # the first option: 24 hours
    page.keyboard.press("ArrowDown")  # 7 days
    page.focus("button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/usage?period=7d**")
    page.wait_for_selector("main section svg")
    assert page.locator("#period").input_value() == "7d"
    assert "Top users" in page.inner_text("main")


def test_a_user_sees_only_their_own_usage(browser, usage_hub):  # noqa: F811
    page = open_usage(browser, usage_hub, "demo")
    text = page.inner_text("main")
    assert "usage of your own sessions" in text
    assert page.locator("main section svg").count() == 1
    assert "Your usage (demo)" in page.locator("main section svg").first.text_content()
    rows = page.inner_text("table").splitlines()[2:]
    assert [r.split("\t")[0] for r in rows] == ["demo"]
    assert "manager" not in page.content() and "admin" not in page.inner_text("table")
    page.screenshot(path=str(usage_hub.state / "usage-user.png"), full_page=True)
    page.goto(f"{usage_hub.url}/services/backendai/usage?period=forever")
    assert "period: 'forever' is not a period" in page.inner_text("main")
