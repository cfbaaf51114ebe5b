"""Sign-in throttling behind the real proxy: forged forwarding headers neither escape nor shift an
address lock, and a locked account stays locked whatever name it is reached by.

Each client speaks from an address of its own on the loopback network (127.0.0.0/8 is all local on
Linux), so that the proxy records a real, distinct client address for each.
"""

from __future__ import annotations

import time

import pytest
import requests
from requests.adapters import HTTPAdapter

from backendai_hub import signing
from tests.hubproc import hub_fixture

hub = hub_fixture("signin-throttle")

SERVICE = "/services/backendai/api/v1"


class _FromAddress(HTTPAdapter):
    """Connections that leave from one local address (the proxy sees it as the client's)."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def client(source: str) -> requests.Session:
    s = requests.Session()
    s.mount("http://", _FromAddress(source))
    return s


def login(hub, login: str, password: str, source: str, headers: dict | None = None) -> int:
    """The status of a form sign-in from ``source`` (302 signed in, 403 wrong, 429 locked)."""
    s = client(source)
    s.headers.update(headers or {})  # on both requests: the hub ties its form's XSRF token to them
    s.get(f"{hub.url}/hub/login", timeout=10)
    r = s.post(f"{hub.url}/hub/login?next=", timeout=20, allow_redirects=False,
               data={"username": login, "password": password, "_xsrf": s.cookies.get("_xsrf", "")})
    return r.status_code


def admin(hub, method: str, path: str) -> requests.Response:
    """A call to the service signed with the admin's keypair (from 127.0.0.1, never locked here)."""
    c = hub.credentials["admin"]
    headers = signing.sign(method, SERVICE + path, host=f"127.0.0.1:{hub.port}", access_key=c["access_key"],
                           secret_key=c["secret_key"])
    return requests.request(method, hub.url + SERVICE + path, headers=headers, timeout=10)


def lock_keys(hub) -> set[str]:
    return {lock["key"] for lock in admin(hub, "GET", "/login-locks").json()["items"]}


def clear_locks(hub) -> None:
    for key in lock_keys(hub):
        assert admin(hub, "DELETE", f"/login-locks/{key}").status_code == 204


def test_forged_forwarding_headers_do_not_escape_the_address_lock(hub):
    clear_locks(hub)
    statuses = [login(hub, f"nobody{i}", "wrong", "127.0.0.2",
                      {"X-Real-Ip": f"203.0.113.{i}", "X-Forwarded-For": f"198.51.100.{i}"})
                for i in range(5)]
    assert statuses == [403] * 5
    # a sixth try with yet another forged address, even with right credentials, is still locked
    demo = hub.credentials["demo"]
    assert login(hub, "demo", demo["password"], "127.0.0.2",
                 {"X-Real-Ip": "203.0.113.77", "X-Forwarded-For": "198.51.100.77, 127.0.0.1"}) == 429
    assert "addr:127.0.0.2" in lock_keys(hub)
    # the lock is the address's, not the user's: demo signs in from elsewhere
    assert login(hub, "demo", demo["password"], "127.0.0.3") == 302
    clear_locks(hub)


def test_naming_someone_elses_address_does_not_lock_them_out(hub):
    clear_locks(hub)
    victim = "127.0.0.5"
    for i in range(6):
        login(hub, f"nobody{i}", "wrong", "127.0.0.4",
              {"X-Real-Ip": victim, "X-Forwarded-For": f"{victim}, {victim}"})
    keys = lock_keys(hub)
    assert f"addr:{victim}" not in keys and "addr:127.0.0.4" in keys
    assert login(hub, "demo", hub.credentials["demo"]["password"], victim) == 302
    clear_locks(hub)


@pytest.mark.parametrize("failures", [
    ["demo"] * 5,  # the report: locked by username, then in by email
    ["demo@example.com"] * 5,
    ["demo", "demo@example.com", "Demo@Example.COM", "DEMO", "access key"],  # they add up
], ids=["by-username", "by-email", "by-every-name"])
def test_a_locked_account_stays_locked_by_every_name(hub, failures):
    """Failures by username, email (any case) and access key count for the one account, and its
    lock holds whichever name it is reached by."""
    clear_locks(hub)
    demo = hub.credentials["demo"]
    names = {"access key": demo["access_key"]}
    # each failure from an address of its own, so that only the account can lock
    assert [login(hub, names.get(name, name), "wrong", f"127.0.1.{i}")
            for i, name in enumerate(failures)] == [403] * 5
    assert lock_keys(hub) == {"user:demo"}
    for i, (name, secret) in enumerate([("demo", demo["password"]), ("demo@example.com", demo["password"]),
                                        ("DEMO@EXAMPLE.COM", demo["password"]), ("Demo", demo["password"]),
                                        (demo["access_key"], demo["secret_key"])]):
        assert login(hub, name, secret, f"127.0.2.{i}") == 429, name
    # another account is not affected, and the admin's clearing lifts the lock for every name
    assert login(hub, "manager@example.com", hub.credentials["manager"]["password"], "127.0.2.9") == 302
    clear_locks(hub)
    assert login(hub, "demo@example.com", demo["password"], "127.0.2.10") == 302


def test_the_service_logs_the_address_the_proxy_saw_not_a_forged_one(hub):
    c = client("127.0.0.6")
    r = c.get(f"{hub.url}{SERVICE}/openapi.json?probe=forged-address", timeout=10,
              headers={"X-Real-Ip": "203.0.113.66", "X-Forwarded-For": "198.51.100.66"})
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in hub.log.read_text(errors="replace").splitlines() if "probe=forged-address" in line]
        if lines:
            break
        time.sleep(0.2)
    assert lines and "(127.0.0.6)" in lines[-1], lines


def test_sign_ins_failures_and_locks_are_in_the_audit_log_with_the_real_address(hub):
    clear_locks(hub)
    demo = hub.credentials["demo"]
    assert login(hub, "demo", demo["password"], "127.0.3.1",
                 {"X-Forwarded-For": "198.51.100.9"}) == 302
    assert [login(hub, "demo", "wrong-password", f"127.0.3.{i}") for i in range(2, 7)] == [403] * 5
    assert login(hub, "demo", demo["password"], "127.0.3.8") == 429
    rows = admin(hub, "GET", "/audit-logs?actor=demo&entity_type=user&limit=20").json()["items"][::-1]
    mine = [r for r in rows if (r["client_address"] or "").startswith("127.0.3.")]
    assert [(r["operation"], r["status"], r["client_address"]) for r in mine] == [
        ("sign-in", "success", "127.0.3.1"),
        *[("sign-in", "rejected", f"127.0.3.{i}") for i in range(2, 7)],
        ("lock", "success", "127.0.3.6"),
        ("sign-in", "rejected", "127.0.3.8")]
    assert mine[1]["description"] == "wrong credentials" and "locked" in mine[-1]["description"]
    assert all(r["source"] == "hub" and r["credential"] == "password" and r["domain"] for r in mine)
    text = str(rows)
    assert demo["password"] not in text and "wrong-password" not in text
    clear_locks(hub)
    # the admin's unlock is recorded too, with the admin as the actor
    unlocks = admin(hub, "GET", "/audit-logs?entity_type=login-lock&operation=delete").json()["items"]
    assert unlocks and unlocks[0]["entity_id"] == "user:demo" and unlocks[0]["actor"] == "admin"
