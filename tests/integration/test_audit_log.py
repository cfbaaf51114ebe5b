"""The audit log as the service writes and serves it: one row for every writing request of every route
(a table over the route list: a new route without an entry fails here), in the change's transaction,
with the actor, reason and request id; secrets never in it; reads scoped by role."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select

from backendai_hub import audit
from backendai_hub.models import AuditLog, User
from backendai_hub.service import backendai_api, backendai_graphql, backendai_sessions, storage_proxy
from backendai_hub.service.app import API_ROUTES
from tests.integration import vfolder_harness
from tests.integration.service_harness import service_fixtures

template, svc = service_fixtures(vfolder_harness.Service)

WRITING = ("post", "patch", "put", "delete")

# every writing route and method -> (entity type, operation) its audit row names
EXPECTED = {
    "POST api/v1/domains": ("domain", "create"),
    "PATCH api/v1/domains/*": ("domain", "update"),
    "DELETE api/v1/domains/*": ("domain", "delete"),
    "POST api/v1/groups": ("group", "create"),
    "PATCH api/v1/groups/*/*": ("group", "update"),
    "DELETE api/v1/groups/*/*": ("group", "delete"),
    "POST api/v1/users": ("user", "create"),
    "PATCH api/v1/users/*": ("user", "update"),
    "DELETE api/v1/users/*": ("user", "delete"),
    "POST api/v1/keypairs": ("keypair", "create"),
    "PATCH api/v1/keypairs/*": ("keypair", "update"),
    "DELETE api/v1/keypairs/*": ("keypair", "delete"),
    "POST api/v1/resource-policies": ("policy", "create"),
    "PATCH api/v1/resource-policies/*/*": ("policy", "update"),
    "DELETE api/v1/resource-policies/*/*": ("policy", "delete"),
    "DELETE api/v1/login-locks/*": ("login-lock", "delete"),
    "POST api/v1/vfolders": ("vfolder", "create"),
    "DELETE api/v1/vfolder-invitations/*": ("vfolder-invitation", "delete"),
    "POST api/v1/vfolder-invitations/*/*": ("vfolder-invitation", "accept"),
    "PATCH api/v1/vfolders/*": ("vfolder", "update"),
    "DELETE api/v1/vfolders/*": ("vfolder", "delete"),
    "POST api/v1/vfolders/*/restore": ("vfolder", "restore"),
    "POST api/v1/vfolders/*/purge": ("vfolder", "purge"),
    "POST api/v1/vfolders/*/clone": ("vfolder", "clone"),
    "DELETE api/v1/vfolders/*/files": ("vfolder", "delete-files"),
    "POST api/v1/vfolders/*/mkdir": ("vfolder", "mkdir"),
    "POST api/v1/vfolders/*/move": ("vfolder", "move"),
    "POST api/v1/vfolders/*/invitations": ("vfolder", "invite"),
    "POST api/v1/vfolders/*/share": ("vfolder", "share"),
    "POST api/v1/vfolders/*/unshare": ("vfolder", "unshare"),
    "POST api/v1/vfolders/*/leave": ("vfolder", "leave"),
    "DELETE api/v1/vfolders/*/collaborators/*": ("vfolder", "kick"),
    "POST api/v1/vfolders/*/uploads": ("vfolder", "upload-start"),
    "PATCH api/v1/vfolders/*/uploads/*": ("vfolder", "upload"),
    "DELETE api/v1/vfolders/*/uploads/*": ("vfolder", "upload-abort"),
    "DELETE api/v1/sessions/*": ("session", "stop"),
    "POST api/v1/shell/restart": ("shell", "restart"),
    "POST api/v1/sidebar/restart": ("session", "restart"),
    "POST api/v1/vfolders/*/upload-grants": ("vfolder", "upload-grant"),
    "POST api/v1/vfolders/*/download-grants": ("vfolder", "download-grant"),
    "POST api/v1/shell/reset": ("shell", "reset"),
    # Backend.AI's routes
    "PATCH folders/_/tus/upload": ("vfolder", "upload"),
    "DELETE folders/_/tus/upload": ("vfolder", "upload-abort"),
    "POST folders": ("vfolder", "create"),
    "DELETE folders": ("vfolder", "delete"),
    "POST folders/invitations/accept": ("vfolder-invitation", "accept"),
    "DELETE folders/invitations/delete": ("vfolder-invitation", "delete"),
    "DELETE folders/*": ("vfolder", "delete"),
    "POST folders/*/rename": ("vfolder", "rename"),
    "POST folders/*/mkdir": ("vfolder", "mkdir"),
    "POST folders/*/rename-file": ("vfolder", "rename-file"),
    "POST folders/*/move-file": ("vfolder", "move-file"),
    "DELETE folders/*/delete-files": ("vfolder", "delete-files"),
    "POST folders/*/request-upload": ("vfolder", "request-upload"),
    "POST folders/*/request-download": ("vfolder", "request-download"),
    "POST folders/*/invite": ("vfolder", "invite"),
    "POST folders/*/share": ("vfolder", "share"),
    "DELETE folders/*/unshare": ("vfolder", "unshare"),
    "POST folders/*/leave": ("vfolder", "leave"),
    "POST folders/*/clone": ("vfolder", "clone"),
    "POST folders/*/update-options": ("vfolder", "update-options"),
    "DELETE session/*": ("session", "stop"),
}
NOT_AUDITED = {"POST admin/gql",  # GraphQL queries: POST is the transport, nothing changes
               "POST api/v1/code-logs"}  # sessions' code-log batches: a log of their own
TOKEN_AUTH = {"PATCH folders/_/tus/upload", "DELETE folders/_/tus/upload"}  # a transfer token, not a signature


def _writing_routes() -> dict[str, tuple[type, str]]:
    """"METHOD template" -> (handler, a request path) for every writing method any route serves."""
    out = {}
    for r in API_ROUTES:
        for m in r.methods:
            if m in WRITING:
                out[f"{m.upper()} api/v1/{re.sub(r'[(][^)]*[)]', '*', r.pattern)}"] = (r.handler, "api/v1/" + r.pattern)
    for pattern, handler in (storage_proxy.ROUTES + backendai_api.VFOLDER_ROUTES + backendai_graphql.ROUTES
                             + backendai_sessions.ROUTES):
        pattern = pattern.rstrip("/?")
        for m in WRITING:
            if getattr(handler, m).__qualname__.split(".")[0] != "RequestHandler":
                out[f"{m.upper()} {re.sub(r'[(][^)]*[)]', '*', pattern)}"] = (handler, pattern)
    return out


def test_every_writing_route_is_in_the_table():
    routes = _writing_routes()
    assert set(routes) - NOT_AUDITED == set(EXPECTED), "a writing route without an audit expectation"
    for key in NOT_AUDITED:
        assert routes[key][0].audited is False


def _rows(svc, since_seq: int) -> list[AuditLog]:
    with svc.db.session(readonly=True) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.seq > since_seq).order_by(AuditLog.seq)))


def _last_seq(svc) -> int:
    with svc.db.session(readonly=True) as s:
        return s.scalar(select(func.coalesce(func.max(AuditLog.seq), 0)))


def _path_for(pattern: str) -> str:
    """A request path naming things that do not exist (the invitation answer: accept)."""
    def fill(m):
        return "accept" if "accept|reject" in m.group(0) else "nosuch"
    return re.sub(r"[(][^)]*[)]", fill, pattern)


@pytest.mark.parametrize("route", sorted(set(EXPECTED) - TOKEN_AUTH))
async def test_each_writing_route_leaves_exactly_one_row(svc, route):
    method, template = route.split(" ", 1)
    _handler, pattern = _writing_routes()[route]
    path = _path_for(pattern)
    url = path[len("api/v1/"):] if path.startswith("api/v1/") else vfolder_harness.base.PREFIX + path
    before = _last_seq(svc)
    body = b"" if "uploads/" in route else b"{}"  # a tus request has no JSON body
    resp = await svc.raw("alice", method, url, body, content_type="application/json")
    rows = _rows(svc, before)
    assert len(rows) == 1, (route, resp.code, [(r.action, r.status) for r in rows])
    row = rows[0]
    entity, operation = EXPECTED[route]
    assert (row.entity_type, row.operation, row.action) == (entity, operation, route)
    assert (row.actor, row.credential, row.domain) == ("alice", f"keypair:{svc.keys['alice'][0]}", "default")
    assert row.source == ("rest" if route.split(" ")[1].startswith("api/v1/") else "backendai")
    assert row.client_address == "127.0.0.1"
    assert row.request_id == resp.headers["X-Request-ID"]
    if resp.code >= 400:
        assert row.status.value == "rejected", (route, resp.code, row.description)
        assert row.description, "a rejected row names its reason"
    else:
        assert row.status.value == "success"


async def test_changes_are_recorded_with_what_they_changed_and_no_secret(svc):
    before = _last_seq(svc)
    code, kp = await svc.call("root", "POST", "keypairs", {"user": "bob"})
    assert code == 201
    code, user = await svc.call("root", "POST", "users", {"username": "zed", "email": "zed@example.com",
                                                          "password": "zed-password-123"})
    assert code == 201
    code, _ = await svc.call("root", "PATCH", "users/zed", {"full_name": "Zed Z"})
    assert code == 200
    code, _ = await svc.call("root", "DELETE", f"keypairs/{kp['access_key']}")
    assert code == 204
    rows = _rows(svc, before)
    assert [(r.entity_type, r.entity_id, r.operation, r.status.value) for r in rows] == [
        ("keypair", kp["access_key"], "create", "success"), ("user", "zed", "create", "success"),
        ("user", "zed", "update", "success"), ("keypair", kp["access_key"], "delete", "success")]
    every_text = " ".join(str(v) for r in rows for v in audit.to_dict(r).values())
    assert kp["secret_key"] not in every_text and "zed-password-123" not in every_text


async def test_a_refused_change_is_rejected_with_its_reason(svc):
    before = _last_seq(svc)
    code, payload = await svc.call("alice", "POST", "domains", {"name": "mine"})
    assert code == 403
    [row] = _rows(svc, before)
    assert (row.entity_type, row.operation, row.status.value) == ("domain", "create", "rejected")
    assert row.description == payload["message"] and row.entity_id == "mine"


async def test_a_change_that_rolls_back_leaves_no_success_row(svc):
    """A duplicate fails at the flush, inside the transaction: the user count and the log say nothing changed."""
    with svc.db.session(readonly=True) as s:
        users = s.scalar(select(func.count()).select_from(User))
    before = _last_seq(svc)
    code, _ = await svc.call("root", "POST", "users", {"username": "alice", "email": "alice2@example.com"})
    assert code == 409
    rows = _rows(svc, before)
    assert [(r.operation, r.status.value) for r in rows] == [("create", "rejected")]
    with svc.db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(User)) == users
        assert audit.verify(s).ok


async def test_a_sharing_change_is_recorded(svc):
    code, vf = await svc.call("dadmin", "POST", "vfolders", {"name": "team", "group": "ml"})
    assert code == 201, vf
    before = _last_seq(svc)
    code, _ = await svc.call("dadmin", "POST", "vfolders/team/share", {"users": ["alice"], "permission": "ro"})
    assert code == 200
    [row] = _rows(svc, before)
    assert (row.actor, row.entity_type, row.entity_id, row.operation, row.status.value) == (
        "dadmin", "vfolder", "team", "share", "success")


async def test_reads_are_scoped_by_role_and_filter(svc):
    await svc.call("alice", "POST", "vfolders", {"name": "alices"})
    await svc.call("olivia", "POST", "vfolders", {"name": "olivias"})
    await svc.call("alice", "POST", "domains", {"name": "nope"})  # rejected

    async def read(who, **q):
        query = "&".join(f"{k}={v}" for k, v in q.items())
        code, page = await svc.call(who, "GET", "audit-logs" + (f"?{query}" if query else ""))
        assert code == 200, page
        return page

    everything = await read("root")
    assert {r["actor"] for r in everything["items"]} >= {"alice", "olivia"}
    assert {r["actor"] for r in (await read("alice"))["items"]} == {"alice"}
    assert {r["actor"] for r in (await read("odadmin"))["items"]} <= {"olivia", "odadmin"}
    assert "olivia" in {r["actor"] for r in (await read("odadmin"))["items"]}
    assert "olivia" not in {r["actor"] for r in (await read("dadmin"))["items"]}
    rejected = await read("alice", status="rejected")
    assert [r["entity_id"] for r in rejected["items"]] == ["nope"]
    assert (await read("root", entity_type="vfolder", q="alices"))["total"] == 1
    page = await read("root", limit=1, offset=1)
    assert len(page["items"]) == 1 and page["items"][0]["seq"] == everything["items"][1]["seq"]
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await read("root", since=future))["total"] == 0
    # one row: visible to its actor, not to another domain's admin
    row_id = rejected["items"][0]["id"]
    assert (await svc.call("alice", "GET", f"audit-logs/{row_id}"))[0] == 200
    assert (await svc.call("odadmin", "GET", f"audit-logs/{row_id}"))[0] == 404
    assert (await svc.call("olivia", "GET", f"audit-logs/{row_id}"))[0] == 404


@pytest.mark.parametrize("query, field", [("status=bogus", "status"), ("since=yesterday", "since"),
                                          ("until=2026-13-01", "until"), ("limit=-1", "limit")])
async def test_bad_filters_are_a_400_naming_the_field(svc, query, field):
    code, payload = await svc.call("root", "GET", f"audit-logs?{query}")
    assert code == 400 and payload["field"] == field, payload


async def test_an_upload_is_recorded_at_its_start_and_its_end_not_per_chunk(svc):
    from tests.integration.test_vfolder_transfer import TUS, create, patch

    assert (await svc.call("alice", "POST", "vfolders", {"name": "data"}))[0] == 201
    before = _last_seq(svc)
    resp = await create(svc, "f.bin", 10)
    assert resp.code == 201
    location = resp.headers["Location"]
    assert (await patch(svc, location, 0, b"01234")).code == 204
    assert (await patch(svc, location, 3, b"xx")).code == 409  # a wrong offset: refused, recorded
    assert (await patch(svc, location, 5, b"56789")).code == 204
    assert TUS
    rows = _rows(svc, before)
    assert [(r.operation, r.status.value) for r in rows] == [
        ("upload-start", "success"), ("upload", "rejected"), ("upload", "success")]
    assert rows[2].entity_id.startswith("data/")



async def test_a_concatenated_upload_is_recorded_once_when_its_file_arrives(svc):
    from tests.integration.test_tus_concatenation import final
    from tests.integration.test_vfolder_transfer import TUS, patch

    assert (await svc.call("alice", "POST", "vfolders", {"name": "data"}))[0] == 201
    before = _last_seq(svc)
    parts = []
    for _ in range(2):
        resp = await svc.raw("alice", "POST", "vfolders/data/uploads", b"",
                             headers={**TUS, "Upload-Length": "5", "Upload-Concat": "partial"})
        parts.append(resp.headers["Location"])
    assert (await patch(svc, parts[0], 0, b"01234")).code == 204  # a part's end: no file yet
    assert (await final(svc, "f.bin", parts)).code == 201
    assert (await patch(svc, parts[1], 0, b"56789")).code == 204  # the last part's end: the file
    assert (await final(svc, "g.bin", [parts[0]])).code == 404  # refused, recorded
    # a final created after its parts ended: its creation is the file's arrival
    late = []
    for _ in range(2):
        resp = await svc.raw("alice", "POST", "vfolders/data/uploads", b"",
                             headers={**TUS, "Upload-Length": "1", "Upload-Concat": "partial"})
        late.append(resp.headers["Location"])
        assert (await patch(svc, late[-1], 0, b"x")).code == 204
    assert (await final(svc, "h.bin", late)).code == 201
    rows = _rows(svc, before)
    assert [(r.operation, r.status.value) for r in rows] == [
        ("upload-start", "success"), ("upload-start", "success"), ("upload-start", "success"),
        ("upload", "success"), ("upload-start", "rejected"),
        ("upload-start", "success"), ("upload-start", "success"), ("upload", "success")]

# -- the CLI ---------------------------------------------------------------------------------------

CLI_WRITES = [
    (("domain", "create", "acme"), ("domain", "acme", "create")),
    (("domain", "update", "acme", "--description", "ACME"), ("domain", "acme", "update")),
    (("group", "create", "ml", "-d", "acme"), ("group", "acme/ml", "create")),
    (("group", "update", "ml", "-d", "acme", "--description", "x"), ("group", "acme/ml", "update")),
    (("policy", "create", "gold", "--max-sessions", "2"), ("policy", "keypair/gold", "create")),
    (("policy", "update", "gold", "--max-sessions", "3"), ("policy", "keypair/gold", "update")),
    (("user", "create", "ann", "--email", "ann@acme.org", "-d", "acme", "--groups", "ml", "--password",
      "ann-password-1"), ("user", "ann", "create")),
    (("user", "update", "ann", "--full-name", "Ann"), ("user", "ann", "update")),
    (("keypair", "issue", "ann", "--policy", "gold"), ("keypair", None, "create")),
    (("user", "delete", "ann"), ("user", "ann", "delete")),
    (("policy", "delete", "gold"), ("policy", "keypair/gold", "delete")),
    (("group", "delete", "ml", "-d", "acme"), ("group", "acme/ml", "delete")),
    (("domain", "delete", "acme"), ("domain", "acme", "delete")),
]


def _db_rows(db_url) -> list[AuditLog]:
    from backendai_hub.db import Database

    db = Database(url=db_url)
    try:
        with db.session(readonly=True) as s:
            return list(s.scalars(select(AuditLog).order_by(AuditLog.seq)))
    finally:
        db.dispose()


def test_every_cli_write_leaves_one_row_and_a_failure_one_rejected_row(run_cli, db_url):
    assert run_cli("db", "upgrade").code == 0
    seen = 0
    for argv, (entity, entity_id, operation) in CLI_WRITES:
        r = run_cli("-o", "json", *argv)
        assert r.code == 0, (argv, r.err)
        rows = _db_rows(db_url)[seen:]
        assert len(rows) == 1, argv
        row = rows[0]
        assert (row.entity_type, row.operation, row.status.value, row.source) == (entity, operation, "success", "cli")
        assert row.entity_id == (entity_id or r.json()["access_key"])
        assert row.actor is None and row.credential.startswith("local:")
        if argv[:2] == ("keypair", "issue"):
            assert r.json()["secret_key"] not in str(audit.to_dict(row))
        seen += 1
    assert run_cli("domain", "create", "dup").code == 0
    r = run_cli("domain", "create", "dup")  # exists already
    assert r.code == 2
    [row] = _db_rows(db_url)[seen + 1:]
    assert (row.entity_type, row.entity_id, row.status.value) == ("domain", "dup", "rejected")
    assert "already exists" in row.description


def test_cli_audit_verify_names_an_edited_row_and_list_export_prune_work(run_cli, db_url, tmp_path):
    from backendai_hub.db import Database

    assert run_cli("db", "upgrade").code == 0
    for name in ("d1", "d2", "d3"):
        assert run_cli("domain", "create", name).code == 0
    r = run_cli("audit", "verify")
    assert r.code == 0 and "intact: 3 row(s)" in r.out
    listed = run_cli("-o", "json", "audit", "list", "--entity-type", "domain", "--limit", "2").json()
    assert [row["entity_id"] for row in listed] == ["d3", "d2"]
    out = tmp_path / "audit.jsonl"
    assert run_cli("audit", "export", "--out", str(out)).code == 0
    lines = out.read_text().splitlines()
    assert [__import__("json").loads(line)["entity_id"] for line in lines] == ["d1", "d2", "d3"]

    db = Database(url=db_url)
    with db.session() as s:
        row = s.scalar(select(AuditLog).where(AuditLog.seq == 2))
        row.entity_id = "someone-else"
        bad_id = row.id
    db.dispose()
    r = run_cli("audit", "verify")
    assert r.code == 1 and f"BROKEN at seq 2 (row id {bad_id})" in r.out and "edited" in r.out
    with Database(url=db_url).session() as s:  # put it back
        s.scalar(select(AuditLog).where(AuditLog.seq == 2)).entity_id = "d2"
    r = run_cli("audit", "prune", "--before", "2999-01-01", "--export", str(tmp_path / "old.jsonl"))
    assert r.code == 0 and "deleted 2 audit row(s)" in r.out
    assert len((tmp_path / "old.jsonl").read_text().splitlines()) == 2
    assert run_cli("audit", "verify").code == 0
    r = run_cli("audit", "prune", "--before", "2999-01-01", "--export", str(tmp_path / "old.jsonl"))
    assert r.code == 2 and "must be a new file" in r.err
    assert run_cli("audit", "list", "--since", "yesterday").code == 2


def test_fixture_populate_records_each_object(run_cli, db_url, tmp_path):
    fixture = tmp_path / "f.yaml"
    fixture.write_text("domains:\n  - name: acme\ngroups:\n  - name: ml\n    domain: acme\n")
    assert run_cli("db", "upgrade").code == 0
    assert run_cli("fixture", "populate", str(fixture)).code == 0
    assert run_cli("fixture", "populate", str(fixture)).code == 0
    rows = _db_rows(db_url)
    assert [(r.source, r.entity_type, r.entity_id, r.operation) for r in rows] == [
        ("fixtures", "domain", "acme", "create"), ("fixtures", "group", "acme/ml", "create"),
        ("fixtures", "domain", "acme", "update"), ("fixtures", "group", "acme/ml", "update")]
    fixture.write_text("groups:\n  - name: ml\n    domain: nowhere\n")
    assert run_cli("fixture", "populate", str(fixture)).code == 2
    last = _db_rows(db_url)[-1]
    assert (last.entity_type, last.operation, last.status.value) == ("fixture", "populate", "rejected")


def test_the_services_periodic_pass_applies_the_retention_and_keeps_a_copy(svc, tmp_path):
    from backendai_hub.service.culler import Culler

    old = datetime.now(timezone.utc) - timedelta(days=40)
    with svc.db.session() as s:
        s.execute(delete(AuditLog))  # the template's fixture rows: a log that starts with these
        for i in range(3):
            audit.append(s, audit.SERVICE, audit.Event("domain", "update", "test", entity_id=f"old{i}"), now=old)
        audit.append(s, audit.SERVICE, audit.Event("domain", "update", "test", entity_id="new"))
    culler = Culler(svc.db, "http://127.0.0.1:9/hub/api", "unused", audit_retention=timedelta(days=30),
                    audit_export_dir=str(tmp_path / "exports"))
    assert culler.prune_audit() == 3
    [exported] = (tmp_path / "exports").iterdir()
    assert [__import__("json").loads(line)["entity_id"] for line in exported.read_text().splitlines()] == [
        "old0", "old1", "old2"]
    with svc.db.session(readonly=True) as s:
        assert audit.verify(s).ok
        assert [r.entity_id for r in s.scalars(select(AuditLog).order_by(AuditLog.seq))][0] == "new"
    assert culler.prune_audit() == 0  # nothing older is left
