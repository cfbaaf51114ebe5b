"""The REST service as the hub runs it: behind the real proxy, with hub tokens and keypair signatures."""

from datetime import datetime, timedelta, timezone

import pytest
import requests

from backendai_hub import signing
from tests.hubproc import run_cli, service_api


@pytest.fixture(scope="module")
def hub(demo_hub):
    # a second domain with a user, so that domain scoping is visible
    for args in (["domain", "create", "research"], ["group", "create", "bio", "-d", "research"],
                 ["user", "create", "rita", "--email", "rita@example.com", "-d", "research", "--groups", "bio",
                  "--password-stdin"]):
        r = run_cli(demo_hub, *args, stdin="rita-password\n")
        assert r.returncode == 0 or "already exists" in r.stderr, r.stderr
    return demo_hub


api = service_api


@pytest.mark.parametrize("who, role, administers", [
    ("admin", "superadmin", ["*"]), ("manager", "domain-admin", ["default"]), ("demo", "user", [])])
def test_hub_token_carries_the_role(hub, tokens, who, role, administers):
    r = api(hub, tokens[who], "GET", "me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["role"], me["administers"], me["authenticated_via"]) == (role, administers, "token")


def test_domain_admin_sees_only_their_domain(hub, tokens):
    everyone = {u["username"] for u in api(hub, tokens["admin"], "GET", "users").json()["items"]}
    theirs = {u["username"] for u in api(hub, tokens["manager"], "GET", "users").json()["items"]}
    assert "rita" in everyone and "rita" not in theirs
    assert {"admin", "manager", "demo"} <= theirs
    assert api(hub, tokens["manager"], "GET", "users/rita").status_code == 404
    r = api(hub, tokens["manager"], "POST", "users", json={"username": "x1", "email": "x1@example.com",
                                                         "domain": "research"})
    assert r.status_code == 403 and "only their own domain 'default'" in r.json()["message"]
    r = api(hub, tokens["manager"], "PATCH", "users/demo", json={"role": "superadmin"})
    assert r.status_code == 403 and "only superadmins can make someone superadmin" in r.json()["message"]
    assert [d["name"] for d in api(hub, tokens["manager"], "GET", "domains").json()["items"]] == ["default"]


def test_user_reaches_only_themselves(hub, tokens):
    assert [u["username"] for u in api(hub, tokens["demo"], "GET", "users").json()["items"]] == ["demo"]
    r = api(hub, tokens["demo"], "GET", "resource-policies")
    assert r.status_code == 403 and "only superadmins and domain admins" in r.json()["message"]
    r = api(hub, tokens["demo"], "POST", "keypairs", json={})
    assert r.status_code == 201 and len(r.json()["secret_key"]) == 40


def test_tenancy_is_mirrored_into_hub_groups_and_roles(hub, tokens):
    r = requests.get(f"{hub.url}/hub/api/users/manager", headers={"Authorization": f"token {tokens['admin']}"},
                     timeout=10)
    model = r.json()
    assert set(model["groups"]) == {"domain:default", "default:default"}
    assert "backendai-domain-admin-default" in model["roles"] and not model["admin"]
    assert requests.get(f"{hub.url}/hub/api/users/admin", headers={"Authorization": f"token {tokens['admin']}"},
                        timeout=10).json()["admin"] is True
    # the domain admin's hub role lists only users of their domain
    hub_users = requests.get(f"{hub.url}/hub/api/users", headers={"Authorization": f"token {tokens['manager']}"},
                             timeout=10).json()
    names = {u["name"] for u in hub_users}
    assert "demo" in names and "manager" in names
    assert "rita" not in names and "admin" not in names  # other domains and superadmins are out of reach


def test_no_credentials_is_401_json(hub):
    r = requests.get(f"{hub.url}/services/backendai/api/v1/me", timeout=10)
    assert r.status_code == 401
    assert r.json()["error"] == "Unauthorized"


def test_version_handshake(hub):
    for path in ("/services/backendai", "/services/backendai/"):
        r = requests.get(hub.url + path, timeout=10)
        assert r.status_code == 200 and r.json()["version"] == "v7.20230615"


def signed_get(hub, path, ak, sk, *, date=None):
    headers = signing.sign("GET", path, host=f"127.0.0.1:{hub.port}", access_key=ak, secret_key=sk,
                           date=date or datetime.now(timezone.utc))
    return requests.get(hub.url + path, headers=headers, timeout=10)


def test_keypair_signature_through_the_proxy_and_its_refusals(hub):
    c = hub.credentials["demo"]
    path = "/services/backendai/api/v1/me"
    assert signed_get(hub, path, c["access_key"], c["secret_key"]).json()["username"] == "demo"
    r = signed_get(hub, path, c["access_key"], "x" * 40)
    assert r.status_code == 401 and "signature does not match" in r.json()["message"].lower()
    for minutes in (16, -16):
        r = signed_get(hub, path, c["access_key"], c["secret_key"],
                       date=datetime.now(timezone.utc) - timedelta(minutes=minutes))
        assert r.status_code == 401 and "at most 900 s is allowed" in r.json()["message"]
    headers = signing.sign("GET", path, host=f"127.0.0.1:{hub.port}", access_key=c["access_key"],
                           secret_key=c["secret_key"])
    assert requests.get(hub.url + path, headers=headers, timeout=10).status_code == 200
    r = requests.get(hub.url + path, headers=headers, timeout=10)
    assert r.status_code == 401 and "signature was already used" in r.json()["message"]


def run_backend_ai(exe, hub, tmp_path, access_key, secret_key, *args):
    import subprocess

    env = {"PATH": f"{exe.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "BACKEND_ENDPOINT": f"{hub.url}/services/backendai", "BACKEND_ENDPOINT_TYPE": "api",
           "BACKEND_ACCESS_KEY": access_key, "BACKEND_SECRET_KEY": secret_key}
    return subprocess.run([str(exe), *args], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60)


def test_real_backend_ai_client_authenticates_with_an_issued_keypair(hub, backend_ai_cli, tmp_path):
    # a keypair issued by the admin CLI, as an operator would hand it out
    r = run_cli(hub, "-o", "json", "keypair", "issue", "demo")
    assert r.returncode == 0, r.stderr
    import json

    kp = json.loads(r.stdout)
    out = run_backend_ai(backend_ai_cli, hub, tmp_path, kp["access_key"], kp["secret_key"],
                         "vfolder", "list-hosts")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Usable hosts: local" in out.stdout
    bad = run_backend_ai(backend_ai_cli, hub, tmp_path, kp["access_key"], "x" * 40, "vfolder", "list-hosts")
    assert bad.returncode != 0
    assert "401" in bad.stdout + bad.stderr


def test_real_client_uploads_clones_and_downloads_through_the_proxy(hub, backend_ai_cli, tmp_path):
    """The proxy holds response headers until the first body bytes: the clone's event stream must still
    reach the client in a shape its progress viewer survives (23.9 crashes on events that arrive at once)."""
    import hashlib
    import os

    c = hub.credentials["demo"]
    (tmp_path / "up").mkdir()
    (tmp_path / "down").mkdir()
    blob = os.urandom(5 << 20)
    (tmp_path / "up" / "blob.bin").write_bytes(blob)

    def bai(where, *args):
        out = run_backend_ai(backend_ai_cli, hub, tmp_path / where, c["access_key"], c["secret_key"], *args)
        assert out.returncode == 0 and "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
        return out.stdout + out.stderr

    bai("up", "vfolder", "create", "proxied", "local", "--cloneable")
    bai("up", "vfolder", "upload", "proxied", "blob.bin")
    assert "Cloning the vfolder is complete." in bai("up", "vfolder", "clone", "proxied", "proxied-copy", "local")
    bai("down", "vfolder", "download", "proxied-copy", "blob.bin")
    assert hashlib.sha256((tmp_path / "down" / "blob.bin").read_bytes()).digest() == hashlib.sha256(blob).digest()


def remote_cli(hub, who, *args):
    import os
    import subprocess
    import sys

    c = hub.credentials[who]
    env = {**os.environ, "BACKEND_ENDPOINT": f"{hub.url}/services/backendai",
           "BACKEND_ACCESS_KEY": c["access_key"], "BACKEND_SECRET_KEY": c["secret_key"]}
    env.pop("BACKENDAI_HUB_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "backendai_hub.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_remote_cli_reads_and_writes_through_the_service(hub):
    import json

    r = remote_cli(hub, "admin", "-o", "json", "domain", "create", "remote-made", "--slots", "cpu=4")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total_resource_slots"] == {"cpu": "4"}
    assert remote_cli(hub, "admin", "group", "create", "g1", "-d", "remote-made").returncode == 0
    r = remote_cli(hub, "admin", "-o", "json", "group", "list", "-d", "remote-made")
    assert [g["name"] for g in json.loads(r.stdout)] == ["g1"]
    # the change is in the hub's database, as the local CLI sees it
    assert json.loads(run_cli(hub, "-o", "json", "domain", "show", "remote-made").stdout)["name"] == "remote-made"
    r = remote_cli(hub, "admin", "domain", "create", "remote-made")
    assert r.returncode == 2 and r.stderr.strip() == \
        "backendai-hub: error: domain 'remote-made' already exists (HTTP 409)"
    r = remote_cli(hub, "manager", "domain", "create", "nope")
    assert r.returncode == 2 and "only superadmins create, change or delete domains" in r.stderr
    r = remote_cli(hub, "demo", "-o", "json", "user", "list")
    assert [u["username"] for u in json.loads(r.stdout)] == ["demo"]
    r = remote_cli(hub, "admin", "fixture", "list", "x.yaml")
    assert r.returncode == 2 and "works on the database only" in r.stderr


def test_remote_cli_reports_an_unreachable_hub(hub):
    import os
    import subprocess
    import sys

    env = {**os.environ, "BACKEND_ENDPOINT": "http://127.0.0.1:9/services/backendai",
           "BACKEND_ACCESS_KEY": "AKIAAAAAAAAAAAAAAAAA", "BACKEND_SECRET_KEY": "s" * 40}
    r = subprocess.run([sys.executable, "-m", "backendai_hub.cli", "domain", "list"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot reach http://127.0.0.1:9/services/backendai" in r.stderr


def test_remote_cli_audit_reads_what_the_remote_writes_left(hub):
    import json

    assert remote_cli(hub, "admin", "domain", "create", "audited-remote").returncode == 0
    r = remote_cli(hub, "admin", "-o", "json", "audit", "list", "--entity-type", "domain", "--entity-id",
                   "audited-remote")
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert (row["actor"], row["source"], row["operation"], row["status"]) == ("admin", "rest", "create", "success")
    assert row["credential"] == f"keypair:{hub.credentials['admin']['access_key']}"
    shown = json.loads(remote_cli(hub, "admin", "-o", "json", "audit", "show", str(row["id"])).stdout)
    assert shown["hash"] == row["hash"]
    # a user reads only their own rows; verify and prune need the database
    r = remote_cli(hub, "demo", "-o", "json", "audit", "list", "--limit", "1000")
    assert r.returncode == 0 and {x["actor"] for x in json.loads(r.stdout)} <= {"demo"}
    r = remote_cli(hub, "admin", "audit", "verify")
    assert r.returncode == 2 and "works on the database only" in r.stderr
    r = run_cli(hub, "audit", "verify")
    assert r.returncode == 0 and "audit log intact" in r.stdout, r.stdout + r.stderr
