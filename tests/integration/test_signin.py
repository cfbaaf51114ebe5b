"""Sign-in rules on a hub of its own: keypair sign-in, inactive things, throttling and its locks."""

import json

import requests

from backendai_hub import signing
from tests.hubproc import hub_fixture, run_cli

hub = hub_fixture("signin")


def signed(hub, method, path, who="admin"):
    c = hub.credentials[who]
    headers = signing.sign(method, path, host=f"127.0.0.1:{hub.port}", access_key=c["access_key"],
                           secret_key=c["secret_key"])
    return requests.request(method, hub.url + path, headers=headers, timeout=10)


def last_used(hub, access_key: str):
    keys = json.loads(run_cli(hub, "-o", "json", "keypair", "list").stdout)
    return {k["access_key"]: k["last_used"] for k in keys}[access_key]


def test_sign_in_with_access_key_and_secret_key(hub):
    c = hub.credentials["demo"]
    before = last_used(hub, c["access_key"])
    s, r = hub.login(c["access_key"], c["secret_key"])
    assert r.status_code == 302
    assert last_used(hub, c["access_key"]) not in (None, before)  # the sign-in is the key's last use
    assert s.get(f"{hub.url}/hub/api/user", headers={"X-XSRFToken": s.cookies.get("_xsrf", "")},
                 timeout=10).json()["name"] == "demo"
    _, r = hub.login(c["access_key"], c["secret_key"][:-1] + "x")
    assert r.status_code == 403 and "Invalid username or password" in r.text


def test_inactive_keypair_and_domain_are_refused_with_the_reason(hub):
    r = run_cli(hub, "-o", "json", "keypair", "issue", "demo", "--inactive")
    kp = json.loads(r.stdout)
    _, resp = hub.login(kp["access_key"], kp["secret_key"])
    assert resp.status_code == 403
    assert f"keypair &#39;{kp['access_key']}&#39; is inactive" in resp.text

    for args in (["domain", "create", "frozen", "--inactive"],
                 ["user", "create", "fred", "--email", "fred@example.com", "-d", "frozen", "--password-stdin"]):
        assert run_cli(hub, *args, stdin="fred-password\n").returncode == 0
    _, resp = hub.login("fred", "fred-password")
    assert resp.status_code == 403 and "domain &#39;frozen&#39; is inactive" in resp.text


def test_repeated_failures_lock_the_user_and_address_until_an_admin_clears_them(hub):
    password = hub.credentials["demo"]["password"]
    # earlier tests' failures from 127.0.0.1 count towards the address lock too, so the address
    # may lock before the user does: either way, five failures are the most anyone gets
    statuses = [hub.login("demo", "wrong-password")[1].status_code for _ in range(5)]
    assert statuses[0] == 403 and set(statuses) <= {403, 429}
    _, r = hub.login("demo", password)
    assert r.status_code == 429 and "too many failed sign-ins" in r.text
    # the lock is visible to admins through the API (signed with the admin's keypair) ...
    locks = signed(hub, "GET", "/services/backendai/api/v1/login-locks").json()["items"]
    keys = {lock["key"] for lock in locks}
    assert keys and keys <= {"user:demo", "addr:127.0.0.1"}
    assert all(0 < lock["seconds_left"] <= 300 for lock in locks)
    # ... but not to the locked-out user's domain admin
    assert signed(hub, "GET", "/services/backendai/api/v1/login-locks", who="manager").status_code == 403
    for key in keys:
        assert signed(hub, "DELETE", f"/services/backendai/api/v1/login-locks/{key}").status_code == 204
    assert hub.login("demo", password)[1].status_code == 302
