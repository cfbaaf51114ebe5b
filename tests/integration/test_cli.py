"""The admin CLI end to end on SQLite and PostgreSQL: JSON output, clear errors, nothing half-written."""

import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from backendai_hub.db import Database
from backendai_hub.host_permissions import HOST_PERMISSIONS
from backendai_hub.models import User
from tests.conftest import REPO

EXAMPLE = str(REPO / "backendai_hub" / "fixtures" / "example.yaml")


@pytest.fixture
def cli(run_cli):
    r = run_cli("db", "upgrade")
    assert r.code == 0, r
    return run_cli


def ok(result):
    assert result.code == 0, result
    return result


def snapshot(cli):
    """Everything the CLI can read, to prove a failed command changed nothing."""
    return {res: ok(cli("-o", "json", res, "list")).json()
            for res in ("domain", "group", "user", "keypair", "policy")}


def test_tenancy_end_to_end_with_json_output(cli):
    d = ok(cli("domain", "create", "acme", "--slots", "cpu=16,mem=64g", "--description", "ACME", "-o", "json")).json()
    assert d["name"] == "acme" and d["total_resource_slots"] == {"cpu": "16", "mem": str(64 * 1024 ** 3)}

    g = ok(cli("group", "create", "ml", "-d", "acme", "--slots", "cuda.device=2", "-o", "json")).json()
    assert (g["domain"], g["name"], g["total_resource_slots"]) == ("acme", "ml", {"cuda.device": "2"})

    p = ok(cli("policy", "create", "gold", "--slots", "cpu=4,mem=16g", "--max-sessions", "2",
               "--idle-timeout", "3600", "--idle-timeout-accelerator", "600", "-o", "json")).json()
    assert p["max_concurrent_sessions"] == 2 and p["idle_timeout"] == 3600 and p["idle_timeout_accelerator"] == 600
    p = ok(cli("policy", "update", "gold", "--idle-timeout-accelerator", "none", "-o", "json")).json()
    assert p["idle_timeout_accelerator"] is None
    up = ok(cli("policy", "create", "quota", "--kind", "user", "--max-vfolder-count", "5",
                "--max-quota-size", "10g", "--max-quota-scope-size", "1t", "-o", "json")).json()
    assert (up["max_quota_size"], up["max_quota_scope_size"]) == (10 * 1024 ** 3, 1024 ** 4)

    u = ok(cli("user", "create", "alice", "--email", "alice@example.com", "-d", "acme", "--groups", "ml",
               "--policy", "quota", "--password-stdin", "-o", "json", stdin="hunter2-hunter2\n")).json()
    assert (u["domain"], u["groups"], u["role"], u["resource_policy"]) == ("acme", ["ml"], "user", "quota")
    assert "password" not in u  # it was given, so it is not echoed

    kp = ok(cli("keypair", "issue", "alice", "--policy", "gold", "-o", "json")).json()
    assert kp["access_key"].startswith("AKIA") and len(kp["secret_key"]) == 40
    shown = ok(cli("keypair", "show", kp["access_key"], "-o", "json")).json()
    assert "secret_key" not in shown and shown["resource_policy"] == "gold"
    assert kp["secret_key"] not in ok(cli("keypair", "list")).out

    # updates
    ok(cli("keypair", "update", kp["access_key"], "--inactive"))
    assert ok(cli("keypair", "show", kp["access_key"], "-o", "json")).json()["is_active"] is False
    ok(cli("user", "update", "alice", "--role", "domain-admin", "--status", "inactive"))
    u = ok(cli("user", "show", "alice@example.com", "-o", "json")).json()
    assert (u["role"], u["status"]) == ("domain-admin", "inactive")
    ok(cli("policy", "update", "gold", "--max-sessions", "none"))
    assert ok(cli("policy", "show", "gold", "-o", "json")).json()["max_concurrent_sessions"] is None
    ok(cli("domain", "update", "acme", "--slots", "", "--inactive"))
    d = ok(cli("domain", "show", "acme", "-o", "json")).json()
    assert d["total_resource_slots"] == {} and d["is_active"] is False
    ok(cli("group", "update", "ml", "-d", "acme", "--rename", "vision"))
    assert ok(cli("user", "show", "alice", "-o", "json")).json()["groups"] == ["vision"]

    # table output is aligned with a header
    lines = ok(cli("user", "list")).out.splitlines()
    assert lines[0].split() == ["USERNAME", "EMAIL", "ROLE", "STATUS", "DOMAIN", "GROUPS"]
    assert lines[1].split() == ["alice", "alice@example.com", "domain-admin", "inactive", "acme", "vision"]

    # deletes, in an order the rules allow
    assert "still has" in cli("domain", "delete", "acme").err
    ok(cli("user", "delete", "alice"))
    assert ok(cli("keypair", "list", "-o", "json")).json() == []
    ok(cli("group", "delete", "vision", "-d", "acme"))
    ok(cli("domain", "delete", "acme"))
    ok(cli("policy", "delete", "gold"))
    assert snapshot(cli)["domain"] == []


def test_generated_password_is_printed_once(cli):
    ok(cli("domain", "create", "default"))
    r = ok(cli("user", "create", "bob", "--email", "bob@example.com"))
    assert "(generated; shown once)" in r.out
    assert "generated" not in ok(cli("user", "show", "bob")).out


ERRORS = [
    (["domain", "create", "default"], "domain 'default' already exists"),
    (["domain", "create", "x", "--slots", "mem=12X"], "total_resource_slots.mem: '12X' is not an amount"),
    (["domain", "create", "x", "--slots", "cpu=-2"], "total_resource_slots.cpu: '-2' is not an amount"),
    (["domain", "create", "bad name"], "name: 'bad name' is not a valid name"),
    (["domain", "show", "nope"], "unknown domain 'nope'"),
    (["group", "create", "g", "-d", "nope"], "unknown domain 'nope'"),
    (["group", "create", "base", "-d", "default"], "group 'base' already exists in domain 'default'"),
    (["user", "create", "carol", "--email", "not-an-email"], "email: 'not-an-email' is not an email address"),
    (["user", "create", "carol", "--email", "c@example.com", "--groups", "base,nope"],
     "unknown group 'nope' in domain 'default'"),
    (["user", "create", "carol", "--email", "c@example.com", "--password", "short"], "password: must be 8"),
    (["user", "show", "ghost"], "unknown user 'ghost'"),
    (["keypair", "issue", "ghost"], "unknown user 'ghost'"),
    (["keypair", "issue", "dave", "--policy", "nope"], "unknown keypair resource policy 'nope'"),
    (["keypair", "show", "AKIA123"], "is not an access key"),
    (["policy", "create", "p", "--max-sessions", "-1"], "max_concurrent_sessions: must be between 0 and 2147483647"),
    (["policy", "create", "p", "--max-sessions", "two"], "max_concurrent_sessions: 'two' is not an integer"),
    (["policy", "create", "p", "--kind", "user", "--max-quota-size", "10X"], "max_quota_size: '10X' is not an amount"),
    (["policy", "create", "p", "--max-vfolder-count", "3"], "unknown field 'max_vfolder_count'"),
    (["fixture", "populate", "/nonexistent.yaml"], "cannot read fixture '/nonexistent.yaml'"),
    (["domain", "update", "default", "--allowed-vfolder-hosts", "local:mount-in-session+fly"],
     "allowed_vfolder_hosts: 'fly' is not a storage-host permission (one of create-vfolder, "),
    (["policy", "create", "p", "--allowed-vfolder-hosts", "../etc"], "allowed_vfolder_hosts: '../etc' is not a valid"),
    (["group", "update", "base", "--allowed-vfolder-hosts", "{not json"], "allowed_vfolder_hosts: not valid JSON"),
]


@pytest.mark.parametrize("argv, message", ERRORS, ids=[" ".join(a[:3]) for a, _ in ERRORS])
def test_bad_input_exits_2_with_one_clear_line_and_changes_nothing(cli, argv, message):
    ok(cli("domain", "create", "default"))
    ok(cli("group", "create", "base"))
    ok(cli("user", "create", "dave", "--email", "dave@example.com", "--no-password"))
    before = snapshot(cli)
    r = cli(*argv)
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backendai-hub: error: "), r.err
    assert message in lines[0]
    assert r.out == ""
    assert snapshot(cli) == before


def test_usage_errors_exit_2(cli):
    assert cli("domain", "frobnicate").code == 2
    assert cli("user", "create", "x").code == 2  # --email is required


def test_commands_refuse_a_database_without_schema(run_cli):
    r = run_cli("domain", "list")
    assert r.code == 2
    assert "run `backendai-hub db upgrade` first" in r.err


def test_fixture_populate_list_reset(cli, tmp_path):
    r = ok(cli("fixture", "populate", EXAMPLE, "-o", "json")).json()
    assert {(x["kind"], x["name"], x["action"]) for x in r} >= {
        ("domain", "default", "created"), ("group", "default/ml", "created"), ("user", "admin", "created")}
    # idempotent: a second run updates instead of failing
    assert {x["action"] for x in ok(cli("fixture", "populate", EXAMPLE, "-o", "json")).json()} == {"updated", "created"}
    status = ok(cli("fixture", "list", EXAMPLE, "-o", "json")).json()
    assert all(x["present"] for x in status if x["kind"] != "keypair")
    users = ok(cli("user", "list", "-o", "json")).json()
    assert {u["username"]: u["role"] for u in users} == {"admin": "superadmin", "manager": "domain-admin", "demo": "user"}
    # an admin's change is undone by reset
    ok(cli("user", "update", "demo", "--role", "superadmin"))
    ok(cli("fixture", "reset", EXAMPLE))
    assert ok(cli("user", "show", "demo", "-o", "json")).json()["role"] == "user"


def test_fixture_with_a_bad_entry_writes_nothing(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "domains": [{"name": "d1"}],
        "groups": [{"name": "g1", "domain": "d1"}],
        "users": [{"username": "u1", "email": "u1@example.com", "domain": "d1", "groups": ["missing"]}],
    }))
    before = snapshot(cli)
    r = cli("fixture", "populate", str(bad))
    assert r.code == 2
    assert "fixture user 'u1': unknown group 'missing' in domain 'd1'" in r.err
    assert snapshot(cli) == before
    (tmp_path / "broken.yaml").write_text("domains: [unclosed")
    r = cli("fixture", "populate", str(tmp_path / "broken.yaml"))
    assert r.code == 2 and "is not valid YAML" in r.err
    (tmp_path / "odd.yaml").write_text("planets: []")
    assert "unknown section 'planets'" in cli("fixture", "populate", str(tmp_path / "odd.yaml")).err


@pytest.mark.parametrize("shell, marker", [("bash", "complete"), ("zsh", "#compdef")])
def test_completion_scripts(cli, shell, marker):
    r = ok(cli("completion", shell))
    assert marker in r.out
    for word in ("domain", "keypair", "fixture", "populate"):
        assert word in r.out


def test_console_script_is_installed(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    env = {"BACKENDAI_HUB_CRYPT_KEY_FILE": str(tmp_path / "key"), "PATH": str(REPO / ".venv" / "bin")}
    exe = [sys.executable, "-m", "backendai_hub.cli"]
    script = REPO / ".venv" / "bin" / "backendai-hub"
    if script.exists():
        exe = [str(script)]
    r = subprocess.run([*exe, "--db-url", url, "db", "upgrade"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*exe, "--db-url", url, "domain", "create", "x", "-o", "json"], capture_output=True,
                       text=True, env=env)
    assert json.loads(r.stdout)["name"] == "x"


def test_egress_policy_is_validated(cli):
    r = ok(cli("policy", "create", "net", "--egress", "allowlist", "--egress-allowlist", "10.0.0.5:443", "-o", "json"))
    assert (r.json()["egress"], r.json()["egress_allowlist"]) == ("allowlist", ["10.0.0.5:443"])
    r = cli("policy", "create", "bad", "--egress", "open", "--egress-allowlist", "10.0.0.5:443")
    assert r.code == 2 and "egress_allowlist" in r.err and "takes no allowlist" in r.err
    r = cli("policy", "create", "bad", "--egress", "allowlist", "--egress-allowlist", "example.com:443")
    assert r.code == 2 and "egress_allowlist" in r.err


def test_storage_host_permissions(cli):
    """A host alone grants every permission; ``host:perm+perm`` or a JSON object grants those only."""
    d = ok(cli("domain", "create", "acme", "--allowed-vfolder-hosts", "local,nfs:mount-in-session+download-file",
               "-o", "json")).json()
    assert d["allowed_vfolder_hosts"]["nfs"] == ["mount-in-session", "download-file"]
    assert d["allowed_vfolder_hosts"]["local"] == list(HOST_PERMISSIONS)
    p = ok(cli("policy", "create", "ro-nfs", "-o", "json", "--allowed-vfolder-hosts",
               json.dumps({"nfs": ["download-file", "mount-in-session"]}))).json()
    assert p["allowed_vfolder_hosts"] == {"nfs": ["mount-in-session", "download-file"]}
    assert "nfs(mount-in-session,download-file)" in ok(cli("domain", "show", "acme")).out


def test_the_password_cost_comes_from_the_environment_and_a_bad_one_exits_2(cli, db_url, monkeypatch):
    from backendai_hub import keys

    try:
        ok(cli("domain", "create", "default"))
        monkeypatch.setenv("BACKENDAI_HUB_PASSWORD_COST", "m=19456,t=2,p=1")
        ok(cli("user", "create", "dora", "--email", "dora@example.com", "--password-stdin", stdin="dora-password\n"))
        db = Database(url=db_url)
        try:
            with db.session(readonly=True) as s:
                stored = s.scalar(select(User.password_hash).where(User.username == "dora"))
        finally:
            db.dispose()
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and keys.verify_password(stored, "dora-password")
        before = snapshot(cli)
        for text, message in [("m=19456,t=1", "below OWASP's minimum"), ("memory=1g", "'memory=1g' is not m=<KiB>")]:
            monkeypatch.setenv("BACKENDAI_HUB_PASSWORD_COST", text)
            r = cli("user", "create", "erin", "--email", "erin@example.com", "--password-stdin", stdin="erin-pw-12345\n")
            assert r.code == 2 and message in r.err and "Traceback" not in r.err, r
        monkeypatch.delenv("BACKENDAI_HUB_PASSWORD_COST")
        assert snapshot(cli) == before
    finally:
        keys.set_password_cost(keys.PasswordCost())
