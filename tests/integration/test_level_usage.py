"""Usage kept per level (level_usage) on real SQLite and PostgreSQL: exact, concurrent, repairable."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, insert

from backendai_hub import admission as S
from backendai_hub import fixtures as F
from backendai_hub import tenancy as T
from alembic import command

from backendai_hub.db import Database, alembic_config
from backendai_hub.errors import AdmissionDenied
from backendai_hub.models import HOST_USAGE, KernelSession, LevelUsage, SessionStatus
from backendai_hub.policy import parse_slots
from tests.conftest import database_with
from tests.integration.test_allocation import registry

TENANCY = {
    "resource_policies": {"keypair": [{"name": "many", "max_concurrent_sessions": 100},
                                      {"name": "two", "total_resource_slots": {"cpu": 2}, "max_concurrent_sessions": 2}]},
    "domains": [{"name": "acme", "total_resource_slots": {"cpu": 1000}}],
    "groups": [{"name": "ml", "domain": "acme", "total_resource_slots": {"cpu": 8, "cuda.shares": 4}},
               {"name": "web", "domain": "acme"}],
    "users": [{"username": u, "email": f"{u}@example.com", "domain": "acme", "groups": ["ml", "web"]}
              for u in ("ann", "ben", "cat", "dan")],
    "keypairs": [{"user": "ann", "resource_policy": "two"}, {"user": "ben", "resource_policy": "many"},
                 {"user": "cat", "resource_policy": "many"}, {"user": "dan", "resource_policy": "many"}],
}

db = database_with(TENANCY)


def start(db, user, server="", slots="cpu=1", group=None, **kw) -> int:
    with db.session() as s:
        return S.admit(s, S.resolve(s, user, group), server_name=server, image="img", app="jupyterlab",
                       request=parse_slots(slots, allow_zero=False), **kw).id


def stop(db, sid) -> bool:
    with db.session() as s:
        return S.release(s, sid, "stopped")


def consistent(db) -> dict:
    """The stored usage, after checking that it is exactly what the live sessions hold."""
    with db.session(readonly=True) as s:
        stored, counted = S.stored_usage(s), S.counted_usage(s)
    assert stored == counted
    return stored


def usage_of(db, kind, name=None) -> dict | None:
    with db.session(readonly=True) as s:
        key = {"keypair": lambda: S.resolve(s, name).access_key,
               "group": lambda: str(T.groups.get(s, "acme", name).id),
               "domain": lambda: str(T.domains.get(s, name).id), "host": lambda: ""}[kind]()
        return S.stored_usage(s).get((kind, key))


def test_usage_follows_admissions_releases_and_restarts_exactly(db):
    a = start(db, "ben", "a", slots="cpu=0.1,mem=1g")
    b = start(db, "ben", "b", slots="cpu=0.2", group="web")
    c = start(db, "cat", "c", slots="cpu=0.3,mem=512m")
    assert usage_of(db, "group", "ml") == {"sessions": 2, "slots": {"cpu": "0.4", "mem": str(1536 * 2**20)}, "held": {}}
    assert usage_of(db, "domain", "acme")["slots"]["cpu"] == "0.6"  # exact: no 0.6000000000000001
    assert usage_of(db, "keypair", "ben")["sessions"] == 2
    consistent(db)
    start(db, "cat", "c", slots="cpu=2")  # the same server started again: the stale row gives its share back
    assert usage_of(db, "group", "ml")["slots"] == {"cpu": "2.1", "mem": str(2**30)}
    assert stop(db, a) and not stop(db, a)  # released once: a second release takes nothing back
    assert stop(db, b) and not stop(db, c)  # c was replaced already
    assert usage_of(db, "group", "web") is None and usage_of(db, "keypair", "ben") is None
    assert usage_of(db, "group", "ml") == {"sessions": 1, "slots": {"cpu": "2"}, "held": {}}
    consistent(db)


def test_queued_sessions_hold_nothing_until_promoted(db):
    capacity = {"cpu": Decimal(2)}
    a = start(db, "ben", "a", slots="cpu=2", capacity=capacity)
    q = start(db, "cat", "q", slots="cpu=1", capacity=capacity, queue=True)
    assert usage_of(db, "host")["sessions"] == 1 and consistent(db)
    stop(db, a)
    with db.session() as s:
        row = S.admit(s, S.resolve(s, "cat"), server_name="q", image="img", app="jupyterlab",
                      request=parse_slots("cpu=1"), capacity=capacity, queue=True, queued_id=q)
        assert row.status == SessionStatus.starting
    assert usage_of(db, "host") == {"sessions": 1, "slots": {"cpu": "1"}, "held": {}}
    start(db, "dan", "q2", slots="cpu=2", capacity=capacity, queue=True)  # queued behind nothing, but full
    assert usage_of(db, "host")["sessions"] == 1
    stop(db, q)
    assert usage_of(db, "host") is None and consistent(db) == {}


def test_the_host_row_holds_devices_and_pinned_cpus(db):
    alloc = registry(2, mode="fractional").allocator()
    a = start(db, "ben", "a", slots="cpu=1,cuda.shares=0.3", allocator=alloc, host_cpus=4)
    b = start(db, "cat", "b", slots="cpu=2,cuda.shares=0.75", allocator=alloc, host_cpus=4)
    held = usage_of(db, "host")["held"]
    assert held["devices"] == {"cuda.shares": {"0": "0.3", "1": "0.75"}}
    assert sum(held["cpus"].values()) == 3
    # the next one goes where the room is, as when the hook summed every live row
    c = start(db, "dan", "c", slots="cuda.shares=0.7", allocator=alloc)
    with db.session() as s:
        assert s.get(S.KernelSession, c).allocation["devices"] == {"cuda.shares": {"0": "0.7"}}
    consistent(db)
    for sid in (a, b, c):
        stop(db, sid)
    assert consistent(db) == {}


def test_repair_puts_a_corrupted_table_right(db):
    alloc = registry(2).allocator()
    start(db, "ann", "a", slots="cpu=1")
    start(db, "ben", "b", slots="cpu=1,cuda.device=1", allocator=alloc)
    want = consistent(db)
    with db.session() as s:  # what a crash of the old code, a hand edit or a bad restore could leave
        ann = S.resolve(s, "ann")
        s.get(LevelUsage, ("keypair", ann.access_key)).sessions = 2
        s.get(LevelUsage, ("group", str(ann.group_id))).slots = {"cpu": "8"}
        s.delete(s.get(LevelUsage, ("domain", str(ann.domain_id))))
        s.get(LevelUsage, HOST_USAGE).held = {"devices": {"cuda.device": {"0": "1", "1": "1"}}}
        s.add(LevelUsage(kind="keypair", key="AKGHOST", sessions=3, slots={"cpu": "3"}, held={}))
    # the damage shows: ann's keypair looks full, the group too, and no GPU seems free
    with pytest.raises(AdmissionDenied, match="allows 2 concurrent sessions, 2 running"):
        start(db, "ann", "x", slots="cpu=1")
    with pytest.raises(AdmissionDenied, match="group 'ml' allows cpu=8, 8 in use"):
        start(db, "cat", "x", slots="cpu=1")
    with pytest.raises(AdmissionDenied, match="no free device"):
        start(db, "cat", "x", slots="cuda.device=1", group="web", allocator=alloc)
    with db.session() as s:
        fixed = S.repair_usage(s)
    assert len(fixed) == 5, fixed
    assert any(line.startswith("keypair AKGHOST: recorded 3 session(s), cpu=3, live sessions hold nothing")
               for line in fixed), fixed
    assert any(line.startswith(f"domain {ann.domain_id}: recorded nothing, live sessions hold 2 session(s)")
               for line in fixed), fixed
    assert consistent(db) == want
    with db.session() as s:
        assert S.repair_usage(s) == []  # nothing left to put right
    start(db, "ann", "x", slots="cpu=1")
    assert start(db, "cat", "x", slots="cuda.device=1", group="web", allocator=alloc)
    consistent(db)


def test_repair_frees_what_sessions_deleted_with_their_user_held(db):
    """Deleting a user deletes their session rows behind admission's back (the foreign keys cascade)."""
    start(db, "ben", "a", slots="cpu=6")
    with pytest.raises(AdmissionDenied, match="group 'ml' allows cpu=8, 6 in use"):
        start(db, "cat", "b", slots="cpu=3")
    with db.session() as s:
        T.users.delete(s, "ben")
    with db.session(readonly=True) as s:
        assert S.stored_usage(s) != S.counted_usage(s)
    with db.session() as s:
        assert len(S.repair_usage(s)) == 4  # ben's keypair, the group, the domain, the host
    assert consistent(db) == {}
    start(db, "cat", "b", slots="cpu=3")


def test_concurrent_admissions_and_releases_leave_exact_sums(db):
    """Forty threads admit and release with the GPU hook on; the table then equals the recount."""
    alloc = registry(4, mode="fractional").allocator()
    users = ["ben", "cat", "dan"]
    amounts = ["0.1", "0.25", "0.3", "1", "0.05"]

    def attempt(i):
        r = random.Random(i)
        slots = f"cpu={r.choice(amounts)},mem={r.randint(1, 64)}m"
        if i % 3 == 0:
            slots += f",cuda.shares={r.choice(amounts)}"
        try:
            sid = start(db, users[i % 3], f"s{i}", slots=slots, group=r.choice(["ml", "web"]), allocator=alloc,
                        host_cpus=8)
        except AdmissionDenied:
            return None
        if i % 2:
            assert stop(db, sid)
        return sid

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, range(40)))
    assert sum(r is not None for r in results) >= 20, results
    stored = consistent(db)
    with db.session(readonly=True) as s:
        live = [r for r in S.live_sessions(s) if r.status in (SessionStatus.starting, SessionStatus.running)]
    assert stored[HOST_USAGE]["sessions"] == len(live)
    assert Decimal(stored[HOST_USAGE]["slots"]["cpu"]) == sum(Decimal(r.slots["cpu"]) for r in live)
    # and back to nothing, concurrently
    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(lambda r: stop(db, r.id), live))
    assert consistent(db) == {}


def test_concurrent_spawns_at_the_keypair_limit_still_admit_exactly_one(db):
    start(db, "ann", "first", slots="cpu=1")  # two sessions, two cpus allowed; one in use

    def attempt(i):
        try:
            start(db, "ann", f"race{i}", slots="cpu=1")
            return True
        except AdmissionDenied:
            return False

    with ThreadPoolExecutor(20) as pool:
        assert sum(pool.map(attempt, range(20))) == 1
    assert usage_of(db, "keypair", "ann") == {"sessions": 2, "slots": {"cpu": "2"}, "held": {}}
    consistent(db)


def test_upgrade_counts_the_sessions_live_before_it(db_url, tmp_path):
    database = Database(url=db_url, crypt_key_file=str(tmp_path / "key"))
    # the tenancy through today's model, then back to the schema before level_usage (0009) with it
    database.upgrade()
    with database.session() as s:
        F.populate(s, database.secrets, TENANCY, actor=None)  # no audit log at 0008
        ben, cat = S.resolve(s, "ben"), S.resolve(s, "cat")
    command.downgrade(alembic_config(database.engine), "0008")
    with database.session() as s:
        rows = [(ben, SessionStatus.running, {"cpu": "0.5", "mem": "1073741824"}, {"cpuset": [1, 2]}),
                (ben, SessionStatus.starting, {"cpu": "0.25"}, {"devices": {"cuda.device": {"0": "1"}}, "cpuset": [2]}),
                (cat, SessionStatus.running, {"cpu": "1"}, {}),
                (cat, SessionStatus.terminated, {"cpu": "9"}, {"cpuset": [3]}),
                (cat, SessionStatus.queued, {"cpu": "9"}, {})]
        s.execute(insert(KernelSession.__table__), [
            {"user_id": charge.user_id, "server_name": f"s{i}", "access_key": charge.access_key,
             "group_id": charge.group_id, "domain_id": charge.domain_id, "image": "img", "app": "jupyterlab",
             "slots": slots, "allocation": allocation, "status": status, "status_info": "",
             "created_at": datetime.now(timezone.utc)} for i, (charge, status, slots, allocation) in enumerate(rows)])
    database.upgrade()
    stored = consistent(database)
    assert stored[HOST_USAGE] == {"sessions": 3, "slots": {"cpu": "1.75", "mem": "1073741824"},
                                  "held": {"devices": {"cuda.device": {"0": "1"}}, "cpus": {"1": 1, "2": 2}}}
    with database.session() as s:
        assert S.repair_usage(s) == []
    database.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_admission_reads_no_table_whole(db):
    """Every statement of resolve, admit (GPU hook on) and release finds its rows through an index,
    so that neither live sessions nor users make an admission slower (SQLite's query plans)."""
    alloc = registry(2).allocator()
    for i in range(5):
        start(db, "ben", f"live{i}", slots="cpu=0.5,cuda.device=1" if i < 2 else "cpu=0.5",
              allocator=alloc if i < 2 else None, host_cpus=4)
    statements = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")) and not executemany:
            statements.append((statement, parameters))

    try:
        sid = start(db, "cat", "new", slots="cpu=1", allocator=alloc, host_cpus=4)
        stop(db, sid)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    scans = []
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters):
                detail = row[-1]
                if detail.startswith("SCAN ") and "CONSTANT ROW" not in detail:
                    scans.append((detail, statement.split("FROM")[-1][:120]))
    assert statements and scans == []


async def test_the_services_periodic_pass_repairs_usage_left_by_a_deleted_user(db):
    """The culler's pass is the periodic reconciler: what a cascade left counted is freed by the next pass."""
    from backendai_hub.service.culler import Culler

    start(db, "ben", "a", slots="cpu=6")
    with db.session() as s:
        T.users.delete(s, "ben")
    # no session has a lifetime policy or a revoked mount, so the pass asks the hub nothing
    assert await Culler(db, "http://127.0.0.1:9/hub/api", "unused").run_once() == []
    assert consistent(db) == {}
    start(db, "cat", "b", slots="cpu=3")
