"""The embedded default config: a real hub behind configurable-http-proxy you can sign in to."""

import json
import subprocess
import sys

from tests.conftest import REPO


def test_demo_prints_how_to_sign_in(demo_hub):
    log = demo_hub.log.read_text()
    creds = demo_hub.credentials
    assert set(creds) == {"admin", "manager", "demo"}
    assert f"username: admin    password: {creds['admin']['password']}" in log
    assert f"http://127.0.0.1:{demo_hub.port}" in log
    # the banner never prints keypair secrets; they stay in the 0600 file
    assert creds["admin"]["secret_key"] not in log
    assert oct((demo_hub.state / "credentials.json").stat().st_mode & 0o777) == "0o600"


def test_admin_signs_in_and_reaches_the_admin_page(demo_hub):
    s, r = demo_hub.login("admin", demo_hub.credentials["admin"]["password"])
    assert r.status_code == 302, r.text[:500]
    assert s.get(f"{demo_hub.url}/hub/admin", timeout=10).status_code == 200


def test_user_signs_in_by_email_but_is_not_admin(demo_hub):
    s, r = demo_hub.login("demo@example.com", demo_hub.credentials["demo"]["password"])
    assert r.status_code == 302
    assert s.get(f"{demo_hub.url}/hub/admin", timeout=10).status_code == 403
    assert "demo" in s.get(f"{demo_hub.url}/hub/home", timeout=10).text


def test_wrong_password_is_refused(demo_hub):
    _, r = demo_hub.login("admin", "not-the-password")
    assert r.status_code == 403
    assert "Invalid username or password" in r.text


def test_inactive_user_is_told_why(demo_hub):
    db_url = f"sqlite:///{demo_hub.state / 'backendai_hub.sqlite'}"
    env_cmd = [sys.executable, "-m", "backendai_hub.cli", "--db-url", db_url]
    subprocess.run([*env_cmd, "user", "create", "idle", "--email", "idle@example.com", "--password-stdin"],
                   input="idle-password\n", text=True, check=True, capture_output=True, cwd=REPO,
                   env={"BACKENDAI_HUB_CRYPT_KEY_FILE": str(demo_hub.state / "backendai_hub.key")})
    subprocess.run([*env_cmd, "user", "update", "idle", "--status", "inactive"], check=True,
                   capture_output=True, cwd=REPO)
    _, r = demo_hub.login("idle", "idle-password")
    assert r.status_code == 403
    assert "user &#39;idle&#39; is inactive" in r.text or "user 'idle' is inactive" in r.text
    out = subprocess.run([*env_cmd, "-o", "json", "user", "show", "idle"], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert json.loads(out)["status"] == "inactive"
