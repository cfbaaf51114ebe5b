"""Session operations for admins on 1 000 rows: the REST list's filters and pages, the CLI (local and
remote) and the official client's session list, all over the same sessions written straight to the database."""

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from backendai_hub import session_query as Q
from backendai_hub.cli import main as cli_main_fn
from backendai_hub.models import KernelSession, SessionStatus, User
from tests.conftest import database_with
from tests.integration.service_harness import KEYS, TENANCY, service_fixtures
from tests.integration.test_vfolder_compat import ForkedCLI, bai

NOW = datetime.now(timezone.utc).replace(microsecond=0)
OWNERS = ("alice", "bob", "olivia")  # default/ml, default/cv, other/ml


def spec(i: int) -> dict:
    """What row ``i`` of the 1 000 is: owner, status, image, devices, age."""
    return {"id": None, "user": OWNERS[i % 3], "server_name": "" if i < 3 else f"s{i}",
            "status": "terminated" if i % 4 == 0 else ("queued" if i % 10 == 1 else "running"),
            "image": "python:3.11" if i % 5 else "r-base:4", "accelerators": i % 7 == 0,
            "created_at": NOW - timedelta(hours=i, minutes=30)}  # half past: clear of "48h ago" drifting


SPECS = [spec(i) for i in range(1000)]


def insert_sessions(svc) -> None:
    insert_rows(svc.db)


def insert_rows(db) -> None:
    with db.session() as s:
        users = {u.username: u for u in s.scalars(select(User))}
        for d in SPECS:
            u = users[d["user"]]
            group = u.groups[0]
            running = d["status"] == "running"
            row = KernelSession(
                user_id=u.id, server_name=d["server_name"], access_key=KEYS[d["user"]][0], group_id=group.id,
                domain_id=u.domain_id, image=d["image"], app="jupyterlab", slots={"cpu": "1", "mem": "1073741824"},
                allocation={"devices": {"cuda.device": {"0": "1"}}} if d["accelerators"] else {},
                status=SessionStatus(d["status"]), status_info="", created_at=d["created_at"],
                container_id=f"{len(SPECS):064x}" if running else None,
                started_at=d["created_at"] if d["status"] != "queued" else None,
                terminated_at=d["created_at"] + timedelta(minutes=5) if d["status"] == "terminated" else None)
            s.add(row)
            s.flush()
            d["id"] = row.id
            d["domain"] = u.domain.name
            d["group"] = group.name


template, svc = service_fixtures(setup=insert_sessions)


def expect(pred) -> list[int]:
    """The ids a filter should answer, newest (highest id) first."""
    return sorted((d["id"] for d in SPECS if pred(d)), reverse=True)


async def page_through(svc, who, query: str, limit: int) -> tuple[list[int], int]:
    ids, offset, total = [], 0, None
    while total is None or offset < total:
        status, got = await svc.call(who, "GET", f"sessions?{query}&limit={limit}&offset={offset}")
        assert status == 200, got
        assert got["limit"] == limit and got["offset"] == offset and len(got["items"]) <= limit
        total = got["total"]
        ids += [item["id"] for item in got["items"]]
        offset += limit
    return ids, total


async def test_superadmin_pages_through_all_1000(svc):
    ids, total = await page_through(svc, "root", "status=all", 97)
    assert total == 1000 and ids == expect(lambda d: True)
    # the default is the live ones
    status, got = await svc.call("root", "GET", "sessions?limit=1000")
    assert [i["id"] for i in got["items"]] == expect(lambda d: d["status"] != "terminated")
    assert got["total"] == sum(d["status"] != "terminated" for d in SPECS)


OLD = (NOW - timedelta(hours=500)).isoformat()
FILTERS = [
    ("user=alice&status=all", lambda d: d["user"] == "alice"),
    ("domain=other&status=all", lambda d: d["domain"] == "other"),
    ("group=cv&status=running", lambda d: d["group"] == "cv" and d["status"] == "running"),
    ("status=queued,terminated", lambda d: d["status"] in ("queued", "terminated")),
    ("status=all&image=r-base:4", lambda d: d["image"] == "r-base:4"),
    ("status=all&accelerators=true", lambda d: d["accelerators"]),
    ("status=running&accelerators=false&user=bob", lambda d: not d["accelerators"] and d["status"] == "running"
     and d["user"] == "bob"),
    ("status=all&older_than=48h", lambda d: d["created_at"] < NOW - timedelta(hours=48)),
    (f"status=all&older_than={OLD.replace('+', '%2B')}", lambda d: d["created_at"] < NOW - timedelta(hours=500)),
    ("status=all&user=alice&image=python:3.11&accelerators=true&older_than=10d",
     lambda d: d["user"] == "alice" and d["image"] == "python:3.11" and d["accelerators"]
     and d["created_at"] < NOW - timedelta(days=10)),
]


@pytest.mark.parametrize("query, pred", FILTERS, ids=[q for q, _ in FILTERS])
async def test_filters_and_pages(svc, query, pred):
    ids, total = await page_through(svc, "root", query, 50)
    want = expect(pred)
    assert want and ids == want and total == len(want)


db = database_with(TENANCY)


def test_the_same_answers_on_sqlite_and_postgresql(db):
    insert_rows(db)
    scope = Q.Scope(domains=frozenset({"default"}), username="dadmin")
    with db.session(readonly=True) as s:
        for query, pred in FILTERS:
            raw = dict(part.split("=", 1) for part in query.replace("%2B", "+").split("&"))
            ids, offset, total = [], 0, None
            while total is None or offset < total:
                rows, total = Q.find(s, scope, Q.parse_filters(raw), 64, offset)
                ids += [r.id for r in rows]
                offset += 64
            assert ids == expect(lambda d: d["domain"] == "default" and pred(d)), query


async def test_admins_see_their_scope_and_users_their_own(svc):
    ids, total = await page_through(svc, "dadmin", "status=all", 200)
    assert ids == expect(lambda d: d["domain"] == "default") and total == 667
    _, total = await page_through(svc, "dadmin", "status=all&user=olivia", 200)
    assert total == 0  # another domain's sessions are not there for them, filtered or not
    ids, _ = await page_through(svc, "odadmin", "status=all", 200)
    assert ids == expect(lambda d: d["domain"] == "other")
    ids, _ = await page_through(svc, "alice", "status=all", 1000)
    assert ids == expect(lambda d: d["user"] == "alice")
    _, total = await page_through(svc, "alice", "status=all&user=bob", 100)
    assert total == 0
    theirs = next(d for d in SPECS if d["user"] == "olivia")
    assert (await svc.call("dadmin", "GET", f"sessions/{theirs['id']}"))[0] == 404
    assert (await svc.call("dadmin", "DELETE", f"sessions/{theirs['id']}"))[0] == 404
    assert (await svc.call("alice", "GET", f"sessions/{theirs['id']}/ping"))[0] == 404
    status, got = await svc.call("odadmin", "GET", f"sessions/{theirs['id']}")
    assert status == 200 and got["user"] == "olivia" and got["name"] == "default"
    status, same = await svc.call("olivia", "GET", f"sessions/{got['session_uuid']}")
    assert status == 200 and same == got


@pytest.mark.parametrize("query, field", [
    ("status=bogus", "status"), ("accelerators=maybe", "accelerators"), ("older_than=yesterday", "older_than"),
    ("older_than=2026-13-45", "older_than"), ("limit=5000", "limit"), ("offset=-1", "offset"),
    ("limit=ten", "limit"), ("user=" + "x" * 300, "user")])
async def test_bad_filters_are_400s_naming_the_field(svc, query, field):
    status, got = await svc.call("root", "GET", f"sessions?{query}")
    assert status == 400 and got["field"] == field, got


async def test_stop_without_the_hub_says_so_and_changes_nothing(svc):
    live = next(d for d in SPECS if d["user"] == "alice" and d["status"] == "running")
    status, got = await svc.call("alice", "DELETE", f"sessions/{live['id']}")
    assert status == 503 and "hub's API" in got["message"]
    status, got = await svc.call("alice", "GET", f"sessions/{live['id']}")
    assert got["status"] == "running" and got["status_info"] == ""
    done = next(d for d in SPECS if d["user"] == "alice" and d["status"] == "terminated")
    svc.app.settings["hub_api"] = ("http://127.0.0.1:9/hub/api", "unused")
    status, got = await svc.call("alice", "DELETE", f"sessions/{done['id']}")
    assert status == 409 and "already terminated" in got["message"]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli_main_fn(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_local_cli_filters_and_pages_the_same(svc, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("BACKEND_ENDPOINT", raising=False)
    monkeypatch.setenv("BACKENDAI_HUB_CRYPT_KEY_FILE", str(tmp_path / "key"))
    url = str(svc.db.engine.url)
    want = expect(lambda d: d["user"] == "alice" and d["status"] == "running")
    seen = []
    for offset in range(0, len(want), 40):
        code, out, err = run_cli(capsys, "--db-url", url, "-o", "json", "session", "list", "-u", "alice",
                                 "--status", "running", "--limit", "40", "--offset", str(offset))
        assert code == 0, err
        page = json.loads(out)
        assert page["total"] == len(want)
        seen += [i["id"] for i in page["items"]]
    assert seen == want
    code, out, err = run_cli(capsys, "--db-url", url, "session", "list", "--accelerators", "--older-than", "30d",
                             "--status", "all", "--limit", "5")
    rows = out.splitlines()
    assert code == 0 and rows[0].split()[:3] == ["ID", "USER", "NAME"] and len(rows) == 6
    assert f"({len(expect(lambda d: d['accelerators'] and d['created_at'] < NOW - timedelta(days=30)))} sessions" in err
    code, out, err = run_cli(capsys, "--db-url", url, "session", "list", "--status", "sleeping")
    assert code == 2 and "status: 'sleeping' is not one of" in err
    one = SPECS[1]
    code, out, err = run_cli(capsys, "--db-url", url, "-o", "json", "session", "show", str(one["id"]))
    assert code == 0 and json.loads(out)["user"] == one["user"]
    code, out, err = run_cli(capsys, "--db-url", url, "session", "stop", str(one["id"]))
    assert code == 2 and "needs the hub's API" in err


async def test_remote_cli_sees_the_callers_scope(svc, capsys, monkeypatch):
    ak, sk = KEYS["dadmin"]
    monkeypatch.setenv("BACKEND_ENDPOINT", f"{svc.base}/services/backendai")
    monkeypatch.setenv("BACKEND_ACCESS_KEY", ak)
    monkeypatch.setenv("BACKEND_SECRET_KEY", sk)
    want = expect(lambda d: d["domain"] == "default" and d["image"] == "r-base:4")
    code = await asyncio.to_thread(cli_main_fn, ["-o", "json", "session", "list", "--status", "all", "--image",
                                                   "r-base:4", "--limit", "1000"])
    out = capsys.readouterr()
    assert code == 0, out.err
    page = json.loads(out.out)
    assert [i["id"] for i in page["items"]] == want and page["total"] == len(want)
    code = await asyncio.to_thread(cli_main_fn, ["session", "list", "--older-than", "soon"])
    assert code == 2 and "older_than" in capsys.readouterr().err


@pytest.fixture(scope="module")
def client(backend_ai_cli, tmp_path_factory):
    forked = ForkedCLI(backend_ai_cli, tmp_path_factory.mktemp("bai-home"))
    yield forked
    forked.close()


async def test_official_client_lists_the_callers_own_sessions(svc, client, tmp_path):
    code, out = await bai(client, svc, tmp_path, "--output", "json", "ps", "--all", "--limit", "100", who="bob")
    assert code == 0, out
    got = json.loads(out)
    want = [d for d in SPECS if d["user"] == "bob"]
    assert got["total_count"] == len(want) and len(got["items"]) == 100
    first = got["items"][0]
    newest = max(want, key=lambda d: d["id"])
    assert first["name"] == newest["server_name"] and first["status"] == newest["status"].upper().replace(
        "QUEUED", "PENDING") and first["group_name"] == "cv"
    code, out = await bai(client, svc, tmp_path, "--output", "json", "ps", who="bob")  # active ones
    assert code == 0 and json.loads(out)["total_count"] == sum(d["status"] != "terminated" for d in want)
    code, out = await bai(client, svc, tmp_path, "--output", "json", "session", "info", first["session_id"],
                          who="bob")
    assert code == 0, out
    info = json.loads(out)["items"][0]
    assert info["name"] == first["name"] and info["occupying_slots"] == {"cpu": "1", "mem": "1073741824"}
    assert [c["container_id"] for c in info["containers"]] == [f"{1000:064x}"]
    code, out = await bai(client, svc, tmp_path, "session", "info", first["session_id"], who="alice")
    assert code != 0 and "no such compute session" in out  # another user's: not there
    code, out = await bai(client, svc, tmp_path, "ps", "--filter", 'name == "x"', who="bob")
    assert code != 0 and "filter and order expressions are not supported" in out


async def test_backendai_session_routes_by_name(svc):
    """What the client's ``ComputeSession(name).get_info()`` and ``destroy()`` call: ``session/<name>``."""
    theirs = [d for d in SPECS if d["user"] == "alice"]
    live = max((d for d in theirs if d["status"] == "running"), key=lambda d: d["id"])
    status, got = await svc.call("alice", "GET", f"/services/backendai/session/{live['server_name']}")
    assert status == 200, got
    assert (got["sessionName"], got["status"], got["userId"], got["groupId"]) == (live["server_name"], "RUNNING",
                                                                                   "alice", "ml")
    assert got["occupyingSlots"] == {"cpu": "1", "mem": "1073741824"}
    default = next(d for d in theirs if d["server_name"] == "")
    status, got = await svc.call("alice", "GET", "/services/backendai/session/default")
    assert status == 200 and got["sessionId"].endswith(f"{default['id']:012x}")
    status, got = await svc.call("bob", "GET", f"/services/backendai/session/{live['server_name']}")
    assert status == 404 and got["title"] == "Not found"  # another user's name means nothing to bob
    status, got = await svc.call("dadmin", "GET", f"/services/backendai/session/{live['server_name']}"
                                                  f"?owner_access_key={KEYS['alice'][0]}")
    assert status == 200 and got["userId"] == "alice"  # an admin names the owner, as with the manager
    status, got = await svc.call("bob", "GET", f"/services/backendai/session/x?owner_access_key={KEYS['alice'][0]}")
    assert status == 404 and got["field"] == "owner_access_key"
    done = next(d for d in theirs if d["status"] == "terminated" and d["server_name"])
    status, got = await svc.call("alice", "DELETE", f"/services/backendai/session/{done['server_name']}")
    assert status == 404 and "no live session" in got["msg"]
    status, got = await svc.call("alice", "DELETE", f"/services/backendai/session/{live['server_name']}")
    assert status == 503 and "hub's API" in got["msg"]


async def test_a_server_named_with_digits_is_found_by_its_name_before_any_id(svc):
    """JupyterHub allows a named server "42": ``session/42`` is then the caller's server of that name,
    even when some session has the id 42; an id no own session is named after still finds by id."""
    theirs = [d for d in SPECS if d["user"] == "alice" and d["status"] == "running"]
    other, target = theirs[0], theirs[1]
    with svc.db.session() as s:  # alice names a server after the id of another of her sessions
        s.get(KernelSession, target["id"]).server_name = str(other["id"])
    status, got = await svc.call("alice", "GET", f"/services/backendai/session/{other['id']}")
    assert status == 200 and got["sessionName"] == str(other["id"])
    assert got["sessionId"].endswith(f"{target['id']:012x}")  # the one named so, not the id's
    status, got = await svc.call("alice", "GET", f"/services/backendai/session/{theirs[2]['id']}")
    assert status == 200 and got["sessionId"].endswith(f"{theirs[2]['id']:012x}")  # no such name: the id
