"""PostgreSQL stopped, crashed and restarted under the REST service, admission and the spawner: a clear
503 while it is down, recovery by itself once it is back, nothing half committed, bounded pools.

Every test here runs on a private cluster of its own (tests/pgcluster.py), never the suite's shared one.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import select
from tornado import web

from backendai_hub import admission as S
from backendai_hub import fixtures as F
from backendai_hub.accelerators import Accelerators
from backendai_hub.auth import BackendAIAuthenticator
from backendai_hub.db import Database
from backendai_hub.errors import ServiceUnavailable
from backendai_hub.models import KernelSession
from backendai_hub.vfolders import StorageHosts
from tests.integration.service_harness import KEYS, TENANCY, Service
from tests.mocking import InProcessHub, MockSpawner, spawner_config
from tests.pgcluster import private_postgres

pytestmark = pytest.mark.postgres

ALICE_KEY = KEYS["alice"][0]
ONE_CPU = {"cpu": Decimal(1)}


private_pg = private_postgres()


@pytest.fixture
def pg_url(private_pg):
    """A fresh database on the private cluster (running again if a test left it stopped), dropped afterwards."""
    if not private_pg.running:
        private_pg.start()
    name = "t_" + uuid.uuid4().hex[:12]
    private_pg.sql(f'CREATE DATABASE "{name}"')
    yield private_pg.url(name)
    if not private_pg.running:
        private_pg.start()
    private_pg.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tenancy_db(url: str, tmp_path, **settings) -> Database:
    db = Database(url=url, crypt_key_file=str(tmp_path / "key"), **settings)
    db.upgrade()
    with db.session() as s:
        F.populate(s, db.secrets, TENANCY)
    return db


@pytest.fixture
async def svc(pg_url, tmp_path):
    """The REST service in process on the private cluster, with the service tests' tenancy."""
    s = Service(None, tmp_path, db=tenancy_db(pg_url, tmp_path))
    yield s
    s.stop()


def assert_unavailable(resp) -> None:
    """What a client sees while the database is down: a JSON 503 that names it, with Retry-After."""
    import json

    assert resp.code == 503, (resp.code, resp.body[:300])
    body = json.loads(resp.body)
    assert body["error"] == "ServiceUnavailable" and body["unavailable"] == "database", body
    assert body["message"].startswith("the database is unavailable"), body
    assert resp.headers["Retry-After"] == "5" and body["retry_after"] == 5


async def test_requests_get_a_clear_503_while_postgres_is_down_and_succeed_once_it_is_back(svc, private_pg):
    log: list[tuple[str, str, object]] = []  # (phases the request began and ended in, what, response)
    phase = "up"
    stop = asyncio.Event()

    async def flow(who: int):
        n = 0
        while not stop.is_set():
            n += 1
            name = f"flow-{who}-{n}"
            began = phase
            resp = await svc.fetch("root", "POST", "domains", {"name": name})
            log.append((f"{began}-{phase}", name, resp))
            began = phase
            resp = await svc.fetch("alice", "GET", "me")
            log.append((f"{began}-{phase}", "", resp))

    async def until(predicate, what: str):
        for _ in range(600):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never {what}: {[(p, w, r.code) for p, w, r in log[-10:]]}")

    flows = [asyncio.ensure_future(flow(i)) for i in range(3)]
    try:
        await until(lambda: sum(r.code < 300 for _, _, r in log) >= 6, "served a request")
        phase = "stopping"
        await asyncio.to_thread(private_pg.stop, "fast")  # the flows go on meanwhile
        phase = "down"
        await until(lambda: sum(p == "down-down" and r.code == 503 for p, _, r in log) >= 6, "answered 503")
        assert_unavailable(await svc.fetch("root", "GET", "domains"))
        assert_unavailable(await svc.fetch("alice", "GET", "me"))
        phase = "starting"
        await asyncio.to_thread(private_pg.start)
        phase = "back"
        # no restart of the service: its pool reconnects by itself, from the first request on
        code, me = await svc.call("alice", "GET", "me")
        assert code == 200 and me["username"] == "alice"
        await until(lambda: sum(p == "back-back" and r.code < 300 for p, _, r in log) >= 6, "recovered")
    finally:
        stop.set()
        await asyncio.gather(*flows)
    for p, what, resp in log:
        assert resp.code in (200, 201, 503), (p, what, resp.code, resp.body[:300])
        if resp.code == 503:
            assert_unavailable(resp)
    # served before the stop; refused while down; served again from the first request after the start
    assert all(r.code < 300 for p, _, r in log if p == "up-up")
    assert all(r.code == 503 for p, _, r in log if p == "down-down")
    assert all(r.code < 300 for p, _, r in log if p.startswith("back-"))
    # each domain the service said it created exists; none it refused half exists
    code, page = await svc.call("root", "GET", "domains?limit=1000")
    names = {d["name"] for d in page["items"]}
    created = {w for _, w, r in log if w and r.code == 201}
    refused = {w for _, w, r in log if w and r.code == 503}
    assert created <= names
    assert {n for n in names if n.startswith("flow-")} <= created | refused


async def test_each_process_holds_at_most_its_pool_and_a_full_server_is_a_clear_503(private_pg, pg_url, tmp_path):
    # a role that PostgreSQL lets open 4 connections: two "workers" with pools of 2 fit exactly; one
    # that opened a connection beyond its pool would be refused, and its request would fail
    role = "w_" + uuid.uuid4().hex[:8]
    private_pg.sql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 4")
    dbname = pg_url.rsplit("/", 1)[1]
    private_pg.sql(f'ALTER DATABASE "{dbname}" OWNER TO {role}')
    private_pg.sql(f"ALTER SCHEMA public OWNER TO {role}", dbname=dbname)
    url = private_pg.url(dbname, user=role)
    tenancy_db(url, tmp_path).dispose()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(24))  # far more threads asking for connections than allowed
    workers = []
    for i in range(2):
        work = tmp_path / f"w{i}"
        work.mkdir()
        db = Database(url=url, crypt_key_file=str(tmp_path / "key"), pool_size=2, max_overflow=0, pool_timeout=120)
        workers.append(Service(None, work, db=db))
    try:
        calls = [w.call(who, "GET", path) for w in workers for _ in range(20)
                 for who, path in (("root", "domains"), ("alice", "me"), ("bob", "vfolders"))]
        results = await asyncio.gather(*calls)
        assert [code for code, _ in results] == [200] * len(calls), [p for c, p in results if c != 200][:3]
        held = private_pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'")
        assert int(held) <= 4
        # a server with no connection left for us (here: the role's limit; elsewhere max_connections)
        private_pg.sql(f"ALTER ROLE {role} CONNECTION LIMIT 0")
        private_pg.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        resp = await workers[0].fetch("root", "GET", "domains")
        assert_unavailable(resp)
        assert b"no connection left" in resp.body
        private_pg.sql(f"ALTER ROLE {role} CONNECTION LIMIT 4")
        assert (await workers[0].call("root", "GET", "domains"))[0] == 200
    finally:
        for w in workers:
            w.stop()
        private_pg.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        private_pg.sql(f'ALTER DATABASE "{dbname}" OWNER TO postgres')


def live_rows(db: Database) -> list[tuple[str, str]]:
    with db.session(readonly=True) as s:
        return [(r.server_name, r.status.value) for r in s.scalars(select(KernelSession).order_by(KernelSession.id))]


def test_an_admission_cut_by_a_crash_leaves_no_trace(private_pg, pg_url, tmp_path):
    db = tenancy_db(pg_url, tmp_path)
    try:
        with db.session() as s:
            S.admit(s, S.resolve(s, "alice"), server_name="kept", image="img", app="jupyterlab", request=ONE_CPU)
        written, go, outcome = threading.Event(), threading.Event(), {}

        def cut():
            try:
                with db.session() as s:
                    S.admit(s, S.resolve(s, "alice"), server_name="cut", image="img", app="jupyterlab",
                            request=ONE_CPU)
                    written.set()  # the session row and the usage rows are sent, not committed
                    go.wait(60)
            except Exception as e:  # noqa: BLE001 - what the caller gets is the point
                outcome["error"] = e

        t = threading.Thread(target=cut)
        t.start()
        assert written.wait(60)
        private_pg.stop("immediate")  # a crash: the server goes without a checkpoint
        go.set()
        t.join(60)
        assert isinstance(outcome.get("error"), ServiceUnavailable), outcome
        with pytest.raises(ServiceUnavailable, match="the database is unavailable"):
            live_rows(db)
        private_pg.start()  # crash recovery runs; the same Database (pool) carries on
        assert live_rows(db) == [("kept", "starting")]
        with db.session() as s:
            usage = S.stored_usage(s)
            assert usage == S.counted_usage(s)
            assert usage[("keypair", ALICE_KEY)]["sessions"] == 1 and usage[("keypair", ALICE_KEY)]["slots"] == {
                "cpu": "1"}
            S.admit(s, S.resolve(s, "alice"), server_name="cut", image="img", app="jupyterlab", request=ONE_CPU)
        assert live_rows(db) == [("kept", "starting"), ("cut", "starting")]
    finally:
        db.dispose()


def test_admissions_and_releases_through_a_crash_keep_usage_equal_to_the_sessions(private_pg, pg_url, tmp_path):
    db = tenancy_db(pg_url, tmp_path)
    stop, errors = threading.Event(), []
    done = {"admitted": 0, "released": 0, "refused": 0}
    lock = threading.Lock()

    def worker(i: int):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                with db.session() as s:
                    sid = S.admit(s, S.resolve(s, "alice"), server_name=f"w{i}-{n}", image="img",
                                  app="jupyterlab", request=ONE_CPU).id
                with lock:
                    done["admitted"] += 1
                if n % 3:  # two in three are released; the rest stay live
                    with db.session() as s:
                        S.release(s, sid, "stopped")
                    with lock:
                        done["released"] += 1
            except ServiceUnavailable:
                with lock:
                    done["refused"] += 1
                stop.wait(0.05)
            except Exception as e:  # noqa: BLE001 - anything else is a bug the test reports
                errors.append(e)
                return

    def wait_for(predicate, what):
        for _ in range(1200):
            if predicate() or errors:
                return
            stop.wait(0.05)
        raise AssertionError(f"never {what}: {done}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: done["admitted"] >= 8, "admitted")
        private_pg.stop("immediate")
        wait_for(lambda: done["refused"] >= 4, "refused while down")
        private_pg.start()
        after = done["admitted"]
        wait_for(lambda: done["admitted"] >= after + 8, "admitted after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    with db.session() as s:
        assert S.stored_usage(s) == S.counted_usage(s)
        assert S.repair_usage(s) == []
    db.dispose()


async def test_sign_in_and_spawn_while_the_database_is_down_fail_with_a_clear_503_and_work_after(private_pg, pg_url,
                                                                                               tmp_path):
    tenancy_db(pg_url, tmp_path).dispose()
    singletons = (Database, StorageHosts, Accelerators)
    for cls in singletons:  # the spawner's database is this hub's (the private cluster)
        cls.clear_instance()
    hub = InProcessHub(spawner_config(pg_url, str(tmp_path / "key"), str(tmp_path / "vfolders"),
                                      host_capacity={"cpu": 4, "mem": "8g"}))
    options = {"resources": {"cpu": 1, "mem": "1g"}}
    auth = BackendAIAuthenticator(config=hub.config)
    password = {"username": "alice", "password": "alice-password"}
    try:
        spawner, spawn = hub.spawn("alice", options=options)
        await asyncio.wait_for(spawn, 30)  # the hub's pool is warm
        await hub.stop("alice")
        assert (await auth.authenticate(None, password))["name"] == "alice"
        await asyncio.to_thread(private_pg.stop, "fast")
        with pytest.raises(web.HTTPError) as e:  # not "invalid password", not a 500
            await auth.authenticate(None, password)
        assert e.value.status_code == 503 and e.value.log_message.startswith("the database is unavailable")
        spawner, spawn = hub.spawn("alice", options=options)
        with pytest.raises(web.HTTPError) as e:
            await asyncio.wait_for(spawn, 60)
        assert e.value.status_code == 503
        assert e.value.log_message.startswith("the database is unavailable"), e.value.log_message
        assert spawner.container is None  # nothing was started
        await asyncio.to_thread(private_pg.start)
        assert (await auth.authenticate(None, password))["name"] == "alice"  # no hub restart
        spawner, spawn = hub.spawn("alice", options=options)
        await asyncio.wait_for(spawn, 30)
        assert spawner.ready
        await hub.stop("alice")
        db = Database.instance()
        assert [status for _, status in live_rows(db)] == ["terminated", "terminated"]
        with db.session() as s:
            assert S.stored_usage(s) == S.counted_usage(s) == {}
    finally:
        if Database.initialized():
            Database.instance().dispose()
        for cls in singletons:
            cls.clear_instance()


async def test_a_spawn_cut_by_an_outage_fails_clearly_and_frees_its_slots_once_the_database_is_back(
        private_pg, pg_url, tmp_path):
    tenancy_db(pg_url, tmp_path).dispose()
    singletons = (Database, StorageHosts, Accelerators)
    for cls in singletons:
        cls.clear_instance()
    launched, go = asyncio.Event(), asyncio.Event()

    class CutSpawner(MockSpawner):
        """The container starts; the database goes away before the spawner records it running."""

        async def launch_container(self):
            ip_port = await super().launch_container()
            launched.set()
            await go.wait()
            return ip_port

    # one CPU on the host: had alice's cut spawn kept its slot, bob would wait in the queue, then be refused
    hub = InProcessHub(spawner_config(pg_url, str(tmp_path / "key"), str(tmp_path / "vfolders"),
                                      host_capacity={"cpu": 1, "mem": "8g"}, queue_timeout=120))
    options = {"resources": {"cpu": 1, "mem": "1g"}}
    try:
        spawner, spawn = hub.spawn("alice", options=options, spawner_class=CutSpawner)
        await asyncio.wait_for(launched.wait(), 30)
        await asyncio.to_thread(private_pg.stop, "fast")
        go.set()
        with pytest.raises(web.HTTPError) as e:
            await asyncio.wait_for(spawn, 60)
        assert e.value.status_code == 503 and e.value.log_message.startswith("the database is unavailable")
        assert not spawner.container.running  # the hub stopped what had started
        await asyncio.to_thread(private_pg.start)
        bob, spawn = hub.spawn("bob", options=options)
        await asyncio.wait_for(spawn, 150)
        assert bob.ready
        db = Database.instance()
        with db.session(readonly=True) as s:
            rows = {(r.user.username, r.status.value, r.status_info) for r in s.scalars(select(KernelSession))}
        assert rows == {("alice", "terminated", "failed to start"), ("bob", "running", "")}
        with db.session() as s:
            assert S.stored_usage(s) == S.counted_usage(s)
        await hub.stop("bob")
    finally:
        if Database.initialized():
            Database.instance().dispose()
        for cls in singletons:
            cls.clear_instance()


def test_a_server_that_never_answers_fails_within_connect_timeout(tmp_path):
    # a listener that completes TCP handshakes and then says nothing, as a server behind a dead link
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        db = Database(url=f"postgresql://hub@127.0.0.1:{port}/hub", crypt_key_file=str(tmp_path / "key"),
                      connect_timeout=1)
        try:
            with pytest.raises(ServiceUnavailable, match=r"the database is unavailable \(it cannot be reached\)"):
                with db.session() as s:
                    s.execute(select(1))
        finally:
            db.dispose()
