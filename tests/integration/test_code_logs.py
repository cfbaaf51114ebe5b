"""The code-execution log through the REST service and the CLI: the policy flag, ingest (idempotent,
only the session owner's token, only where logging is on), reads with reach and filters, prune."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from backendai_hub import code_logs as CL
from backendai_hub.models import CodeLog, CodeLogStream, Group, KernelSession, SessionStatus, User
from backendai_hub.scopes import SCOPE_CODE_LOG
from tests.integration.service_harness import TENANCY, Service, service_fixtures

# default/ml logs (group flag), default/cv does not, the whole of 'other' logs (domain flag)
CODE_LOG_TENANCY = {
    **TENANCY,
    "domains": [{"name": "default"}, {"name": "other", "code_log": True}, {"name": "empty"}],
    "groups": [{"name": "ml", "domain": "default", "code_log": True}, {"name": "cv", "domain": "default"},
               {"name": "ml", "domain": "other"}],
}


class CodeLogService(Service):
    tenancy = CODE_LOG_TENANCY


def _sessions(svc) -> None:
    """One running session each for alice (default/ml), bob (default/cv) and olivia (other/ml)."""
    with svc.db.session() as s:
        for username, domain, group in (("alice", "default", "ml"), ("bob", "default", "cv"),
                                        ("olivia", "other", "ml")):
            u = s.scalar(select(User).where(User.username == username))
            g = next(g for g in u.groups if g.name == group and g.domain.name == domain)
            s.add(KernelSession(user_id=u.id, server_name="", access_key=u.keypairs[0].access_key, group_id=g.id,
                                domain_id=g.domain_id, image="img", status=SessionStatus.running,
                                started_at=datetime.now(timezone.utc)))


def _hub_tokens(svc) -> None:
    """The service's HubOAuth, answering for session tokens ``session-<user>`` (the hub is not asked)."""
    hub_auth = svc.app.settings["hub_auth"]

    async def user_for_token(token, **_kw):
        if token.startswith("session-"):
            return {"kind": "user", "name": token[len("session-"):],
                    "scopes": [SCOPE_CODE_LOG, "access:services!service=backendai", "users:activity!user=x"]}
        if token.startswith("plain-"):  # a token without the code-log scope
            return {"kind": "user", "name": token[len("plain-"):], "scopes": ["custom:backendai:self"]}
        return None

    hub_auth.user_for_token = user_for_token


def setup(svc):
    _sessions(svc)
    _hub_tokens(svc)


template, svc = service_fixtures(CodeLogService, setup=setup)


def sid(svc, username: str) -> int:
    with svc.db.session() as s:
        return s.scalar(select(KernelSession.id).join(User, KernelSession.user_id == User.id)
                        .where(User.username == username))


def record(i: int, **kw) -> dict:
    return {"id": f"cell-{i}", "kind": "cell", "status": "ok", "kernel_id": "k1", "msg_id": f"m{i}",
            "execution_count": i, "started_at": f"2026-01-01T00:00:{i:02d}Z",
            "ended_at": f"2026-01-01T00:00:{i:02d}.5Z", "code": f"print({i})", **kw}


async def ingest(svc, user: str, body: dict, token: str | None = None):
    return await svc.call(None, "POST", "code-logs", body,
                          headers={"Authorization": f"token {token or 'session-' + user}"})


async def test_a_batch_sent_twice_is_stored_once(svc):
    body = {"session": sid(svc, "alice"), "captured_by": "test", "records": [record(1), record(2), record(3)]}
    code, first = await ingest(svc, "alice", body)
    assert code == 200 and first == {"received": 3, "stored": 3, "duplicates": 0}, first
    code, again = await ingest(svc, "alice", {**body, "records": body["records"] + [record(4)]})
    assert code == 200 and again == {"received": 4, "stored": 1, "duplicates": 3}, again
    code, page = await svc.call("root", "GET", "code-logs")
    assert code == 200 and page["total"] == 4
    assert [r["code"] for r in page["items"]] == ["print(1)", "print(2)", "print(3)", "print(4)"]
    one = page["items"][0]
    assert one["user"] == "alice" and one["domain"] == "default" and one["group"] == "ml"
    assert one["execution_count"] == 1 and one["status"] == "ok" and one["kind"] == "cell"
    assert one["captured_by"] == "test (via 127.0.0.1)"
    assert one["code_size"] == len("print(1)") and len(one["code_sha256"]) == 64
    code, shown = await svc.call("alice", "GET", f"code-logs/{one['id']}")
    assert code == 200 and shown == one


async def test_an_empty_batch_is_a_heartbeat(svc):
    code, out = await ingest(svc, "alice", {"session": sid(svc, "alice"), "records": []})
    assert code == 200 and out["received"] == 0
    with svc.db.session() as s:
        assert s.get(CodeLogStream, sid(svc, "alice")) is not None


async def test_only_the_sessions_owner_ingests_and_only_where_logging_is_on(svc):
    alice = sid(svc, "alice")
    code, err = await ingest(svc, "bob", {"session": alice, "records": [record(1)]})
    assert code == 404 and err["field"] == "session", err  # another user's session looks like none
    code, err = await ingest(svc, "bob", {"session": sid(svc, "bob"), "records": [record(1)]})
    assert code == 403 and "code_log is off" in err["message"], err
    code, err = await ingest(svc, "alice", {"session": alice, "records": [record(1)]}, token="plain-alice")
    assert code == 401 and SCOPE_CODE_LOG in err["message"], err
    code, _ = await svc.call("alice", "POST", "code-logs", {"session": alice, "records": [record(1)]})
    assert code == 401  # a keypair signature is not a session's token
    code, out = await ingest(svc, "olivia", {"session": sid(svc, "olivia"), "records": [record(1)]})
    assert code == 200 and out["stored"] == 1  # the domain's flag suffices
    code, page = await svc.call("root", "GET", "code-logs")
    assert [r["user"] for r in page["items"]] == ["olivia"]


@pytest.mark.parametrize("body, field", [
    ({"records": []}, "session"),
    ({"session": "x", "records": []}, "session"),
    ({"session": 1, "records": {}}, "records"),
    ({"session": 1, "records": [], "colour": 1}, "colour"),
    ({"session": 1, "records": [5]}, "records[0]"),
    ({"session": 1, "records": [{"kind": "cell"}]}, "records[0].id"),
    ({"session": 1, "records": [record(1, kind="gap")]}, "records[0].kind"),
    ({"session": 1, "records": [record(1), record(2, status="fine")]}, "records[1].status"),
    ({"session": 1, "records": [record(1, started_at="yesterday")]}, "records[0].started_at"),
    ({"session": 1, "records": [record(1, execution_count=-1)]}, "records[0].execution_count"),
    ({"session": 1, "records": [record(1, code=7)]}, "records[0].code"),
    ({"session": 1, "records": [record(1, code_size=10**6)]}, "records[0].code_sha256"),
    ({"session": 1, "records": [record(1, extra=1)]}, "records[0].extra"),
])
async def test_bad_batches_are_400s_naming_the_field(svc, body, field):
    code, err = await ingest(svc, "alice", body)
    assert code == 400 and err["field"] == field, err


async def test_long_code_is_cut_but_its_size_and_hash_cover_it_all(svc):
    code_text = "x = 1\n" * 20000  # 120000 bytes
    code, _ = await ingest(svc, "alice", {"session": sid(svc, "alice"), "records": [record(1, code=code_text)]})
    assert code == 200
    code, page = await svc.call("root", "GET", "code-logs")
    r = page["items"][0]
    assert r["truncated"] and r["code_size"] == 120000 and len(r["code"].encode()) == CL.MAX_CODE_BYTES
    import hashlib
    assert r["code_sha256"] == hashlib.sha256(code_text.encode()).hexdigest()


async def _three_users(svc):
    for user in ("alice", "olivia"):
        code, _ = await ingest(svc, user, {"session": sid(svc, user), "records": [
            record(1, code=f"{user} one"), record(2, code=f"{user} two secret", status="error")]})
        assert code == 200


@pytest.mark.parametrize("actor, query, users, status", [
    ("root", "", ["alice", "alice", "olivia", "olivia"], 200),
    ("dadmin", "", ["alice", "alice"], 200),
    ("odadmin", "", ["olivia", "olivia"], 200),
    ("alice", "", ["alice", "alice"], 200),
    ("bob", "", [], 200),
    ("dadmin", "?domain=other", None, 403),
    ("odadmin", "?user=alice", [], 200),  # not theirs: nothing, as for an unknown user
    ("alice", "?user=olivia", None, 403),
    ("root", "?user=olivia&status=error", ["olivia"], 200),
    ("root", "?q=secret", ["alice", "olivia"], 200),
    ("root", "?q=%25", [], 200),  # LIKE wildcards are searched for literally
    ("root", "?since=2026-01-01T00:00:02Z", ["alice", "olivia"], 200),
    ("root", "?until=2026-01-01T00:00:02Z", ["alice", "olivia"], 200),
    ("root", "?since=soon", None, 400),
    ("root", "?kind=cell&limit=1&offset=1", ["olivia"], 200),  # oldest first: alice 1, olivia 1, ...
])
async def test_reads_reach_only_what_the_reader_may_see(svc, actor, query, users, status):
    await _three_users(svc)
    code, page = await svc.call(actor, "GET", f"code-logs{query}")
    assert code == status, page
    if users is not None:
        assert sorted(r["user"] for r in page["items"]) == sorted(users)


async def test_one_record_of_another_domain_is_not_found(svc):
    await _three_users(svc)
    code, page = await svc.call("odadmin", "GET", "code-logs")
    one = page["items"][0]["id"]
    assert (await svc.call("odadmin", "GET", f"code-logs/{one}"))[0] == 200
    code, err = await svc.call("dadmin", "GET", f"code-logs/{one}")
    assert code == 404, err
    assert (await svc.call("alice", "GET", f"code-logs/{one}"))[0] == 404
    assert (await svc.call("root", "GET", "code-logs/abc"))[0] == 400


async def test_the_policy_flag_through_rest(svc):
    code, g = await svc.call("root", "PATCH", "groups/default/cv", {"code_log": True})
    assert code == 200 and g["code_log"] is True
    code, err = await svc.call("root", "PATCH", "domains/default", {"code_log": "yes"})
    assert code == 400 and err["field"] == "code_log"
    code, d = await svc.call("root", "GET", "domains/other")
    assert d["code_log"] is True
    code, out = await ingest(svc, "bob", {"session": sid(svc, "bob"), "records": [record(1)]})
    assert code == 200 and out["stored"] == 1  # bob's group logs now
    code, err = await svc.call("dadmin", "PATCH", "domains/default", {"code_log": False})
    assert code == 403  # domains are superadmins' to change


def test_gaps_are_recorded_once_per_silence(svc):
    now = datetime.now(timezone.utc)
    logged = sorted([sid(svc, "alice"), sid(svc, "olivia")])  # bob's session does not log
    with svc.db.session() as s:
        gaps = CL.record_gaps(s, silence=timedelta(seconds=60), now=now + timedelta(minutes=5))
        assert sorted(gaps) == logged
        assert CL.record_gaps(s, silence=timedelta(seconds=60), now=now + timedelta(minutes=10)) == []
        rows = s.scalars(select(CodeLog).where(CodeLog.kind == "gap")).all()
        assert len(rows) == 2 and all(r.status.value == "unknown" for r in rows)


def test_prune_exports_then_deletes(svc, tmp_path):
    old, alice = datetime(2025, 1, 1, tzinfo=timezone.utc), sid(svc, "alice")
    with svc.db.session() as s:
        CL.ingest(s, "alice", CL.parse_batch({"session": alice, "records": [record(1), record(2)]}),
                  source="test", now=old)
        CL.ingest(s, "alice", CL.parse_batch({"session": alice, "records": [record(3)]}), source="test")
    url = str(svc.db.engine.url)
    out = tmp_path / "old.jsonl"
    cli = [sys.executable, "-m", "backendai_hub.cli", "--db-url", url]
    listed = subprocess.run([*cli, "-o", "json", "code-log", "list", "--user", "alice"], capture_output=True,
                            text=True)
    assert listed.returncode == 0, listed.stderr
    assert [r["record_id"] for r in json.loads(listed.stdout)] == ["cell-1", "cell-2", "cell-3"]
    r = subprocess.run([*cli, "code-log", "prune", "--before", "2026-01-01", "--export", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "deleted 2" in r.stdout, r.stderr
    assert [json.loads(line)["record_id"] for line in out.read_text().splitlines()] == ["cell-1", "cell-2"]
    from backendai_hub.models import AuditLog
    with svc.db.session(readonly=True) as s:  # the prune is an audited change
        row = s.scalars(select(AuditLog).where(AuditLog.entity_type == "code-log")).one()
        assert row.operation == "prune" and row.source == "cli" and "2 record(s)" in row.description
    left = subprocess.run([*cli, "-o", "json", "code-log", "list"], capture_output=True, text=True)
    assert [r["record_id"] for r in json.loads(left.stdout)] == ["cell-3"]
    bad = subprocess.run([*cli, "code-log", "prune", "--before", "someday"], capture_output=True, text=True)
    assert bad.returncode == 2 and "before" in bad.stderr


def test_the_policy_flag_through_the_cli(svc):
    cli = [sys.executable, "-m", "backendai_hub.cli", "--db-url", str(svc.db.engine.url), "-o", "json"]
    r = subprocess.run([*cli, "group", "update", "cv", "-d", "default", "--code-log"], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["code_log"] is True, r.stderr
    r = subprocess.run([*cli, "domain", "update", "other", "--no-code-log"], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["code_log"] is False, r.stderr
    with svc.db.session() as s:
        assert s.scalar(select(Group.code_log).where(Group.name == "cv"))


async def test_the_cli_reads_code_logs_over_the_api_with_a_keypair(svc):
    import asyncio

    from backendai_hub.cli.backends import RemoteBackend
    from tests.integration.service_harness import KEYS, PREFIX

    await _three_users(svc)
    ak, sk = KEYS["dadmin"]
    remote = RemoteBackend(f"{svc.base}{PREFIX.rstrip('/')}", ak, sk)
    loop = asyncio.get_running_loop()
    page = await loop.run_in_executor(None, lambda: remote.code_logs({"q": "secret"}, 100, 0))
    assert [r["user"] for r in page["items"]] == ["alice"]  # the domain admin's reach, over the wire
    one = await loop.run_in_executor(None, lambda: remote.code_log(page["items"][0]["id"]))
    assert one["code"] == "alice two secret"
