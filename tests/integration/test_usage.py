"""Usage accounting on real databases: samples through the write path, idempotent and gap-free across
restarts, then ``GET usage`` and its chart through the real service, with visibility and bad input."""

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from backendai_hub.models import KernelSession, SessionStatus, User
from backendai_hub.session_query import Scope
from backendai_hub.usage import accounting as A
from backendai_hub.usage import query as UQ
from backendai_hub.usage.accounting import Counters
from backendai_hub.usage.models import UsageHour, UsageSample
from tests.conftest import database_with
from tests.integration.service_harness import KEYS, TENANCY, service_fixtures

UTC = timezone.utc
GiB = 1 << 30
T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # alice's session: 22:00 on 30 Nov to 02:00 on 1 Dec

db = database_with(TENANCY)

# (user, start, hours, slots): alice holds a GPU across midnight and the month end; bob none; olivia two
SESSIONS = [("alice", T0, 4, {"cpu": "2", "mem": str(4 * GiB), "cuda.device": "1"}),
            ("bob", T0 - timedelta(hours=10), 2, {"cpu": "1", "mem": str(GiB)}),
            ("olivia", T0 + timedelta(hours=2), 1, {"cpu": "4", "mem": str(8 * GiB), "cuda.device": "2"})]


def add_session(database, user: str, start: datetime, slots: dict) -> int:
    with database.session() as s:
        u = s.scalars(select(User).where(User.username == user)).one()
        row = KernelSession(user_id=u.id, server_name="", access_key=KEYS[user][0], group_id=u.groups[0].id,
                            domain_id=u.domain_id, image="python:3.11", slots=slots, allocation={},
                            status=SessionStatus.running, created_at=start, started_at=start, container_id="c" * 64)
        s.add(row)
        s.flush()
        return row.id


def run_session(database, user, start, hours, slots, *, every=timedelta(minutes=20)) -> int:
    """A session that keeps one core busy and 1 GiB in use, sampled every 20 minutes, then stopped."""
    sid = add_session(database, user, start, slots)
    t = start
    while t < start + timedelta(hours=hours):
        t += every
        elapsed = (t - start).total_seconds()
        with database.session() as s:
            A.record(s, sid, t, Counters(cpu_seconds=elapsed, mem_bytes=GiB, net_rx=int(elapsed)))
    with database.session() as s:
        row = s.get(KernelSession, sid)
        row.status, row.terminated_at = SessionStatus.terminated, start + timedelta(hours=hours)
    with database.session() as s:
        assert A.close(s, sid) is False  # the last sample was at the end already: nothing more
    return sid


def test_samples_are_idempotent_and_a_restart_leaves_no_gap(db):
    sid = add_session(db, "alice", T0, {"cpu": "2", "mem": str(4 * GiB), "cuda.device": "1"})
    with db.session() as s:
        assert A.record(s, sid, T0 + timedelta(minutes=30), Counters(cpu_seconds=600))
    with db.session() as s:  # the same sample again (a retried write, a second sampler): no change
        assert not A.record(s, sid, T0 + timedelta(minutes=30), Counters(cpu_seconds=600))
        assert not A.record(s, sid, T0 + timedelta(minutes=10), Counters(cpu_seconds=100))  # older
    # the service was down for three hours: the next sample carries the whole delta, nothing is lost
    with db.session() as s:
        assert A.record(s, sid, T0 + timedelta(hours=3, minutes=30), Counters(cpu_seconds=600 + 3 * 3600))
    with db.session() as s:
        row = s.get(KernelSession, sid)
        row.status, row.terminated_at = SessionStatus.terminated, T0 + timedelta(hours=4)
    with db.session() as s:  # closed at stop with the figures taken before the container went
        assert A.close(s, sid, Counters(cpu_seconds=600 + 3 * 3600 + 900))
        assert not A.close(s, sid, Counters(cpu_seconds=10**6))  # closed once
        assert not A.record(s, sid, T0 + timedelta(hours=5), Counters(cpu_seconds=10**6))  # nothing after
    with db.session(readonly=True) as s:
        hours = s.scalars(select(UsageHour).where(UsageHour.session_id == sid).order_by(UsageHour.hour)).all()
        assert [h.hour for h in hours] == [T0 + timedelta(hours=i) for i in range(4)]
        assert sum(h.seconds for h in hours) == pytest.approx(4 * 3600)
        assert sum(h.accel_alloc for h in hours) / 3600 == pytest.approx(4.0)  # 4 GPU-hours, no gap
        assert sum(h.cpu_used for h in hours) == pytest.approx(600 + 3 * 3600 + 900)  # no double count
        assert s.scalar(select(func.count()).select_from(UsageSample).where(UsageSample.session_id == sid)) == 3


def test_a_month_by_group_splits_at_midnight_and_month_end(db):
    for user, start, hours, slots in SESSIONS:
        run_session(db, user, start, hours, slots)
    q = UQ.parse_query({"by": "group", "bucket": "day", "start": "2026-11-30", "end": "2026-12-02"})
    with db.session(readonly=True) as s:
        got = UQ.usage(s, Scope(everything=True), q)
        cell = {(i["bucket"], UQ.label(i, "group")): i for i in got["items"]}
        assert cell[("2026-11-30T00:00:00Z", "default/ml")]["allocated"]["gpu_hours"] == pytest.approx(2)
        assert cell[("2026-12-01T00:00:00Z", "default/ml")]["allocated"]["gpu_hours"] == pytest.approx(2)
        assert cell[("2026-12-01T00:00:00Z", "default/ml")]["allocated"]["cpu_core_hours"] == pytest.approx(4)
        assert cell[("2026-12-01T00:00:00Z", "default/ml")]["used"]["cpu_core_hours"] == pytest.approx(2)
        assert cell[("2026-11-30T00:00:00Z", "default/cv")]["allocated"]["cpu_core_hours"] == pytest.approx(2)
        assert cell[("2026-12-01T00:00:00Z", "other/ml")]["allocated"]["gpu_hours"] == pytest.approx(2)
        assert ("2026-11-30T00:00:00Z", "other/ml") not in cell
        months = UQ.usage(s, Scope(everything=True), UQ.parse_query(
            {"by": "domain", "bucket": "month", "start": "2026-11-01", "end": "2027-01-01"}))
        m = {(i["bucket"][:7], i["domain"]): i["allocated"]["gpu_hours"] for i in months["items"]}
        assert m == {("2026-11", "default"): pytest.approx(2), ("2026-12", "default"): pytest.approx(2),
                     ("2026-12", "other"): pytest.approx(2)}
        assert months["totals"][0]["domain"] == "default"  # most GPU-hours first
        # a period cut mid-day: day rows for whole days and hour rows at the edges give what hours give
        cut = {"by": "group", "start": "2026-11-30T23:00:00Z", "end": "2026-12-01T01:00:00Z"}
        days = UQ.usage(s, Scope(everything=True), UQ.parse_query({**cut, "bucket": "day"}))
        hourly = UQ.usage(s, Scope(everything=True), UQ.parse_query({**cut, "bucket": "hour"}))
        assert {UQ.label(t, "group"): t["allocated"] for t in days["totals"]} == {
            UQ.label(t, "group"): t["allocated"] for t in hourly["totals"]}
        assert [i["allocated"]["gpu_hours"] for i in days["items"] if i["group"] == "ml" and i["domain"] == "default"] == [
            pytest.approx(1), pytest.approx(1)]
        wide = UQ.usage(s, Scope(everything=True), UQ.parse_query({"by": "domain", "start": "2026-11-29T05:00:00Z",
                                                                   "end": "2026-12-02T07:00:00Z"}))
        assert sum(t["allocated"]["gpu_hours"] for t in wide["totals"]) == pytest.approx(6)
        assert sum(t["sessions"] for t in wide["totals"]) == 3  # each session once, whichever rows it is in
        alice = UQ.usage(s, Scope(username="alice"), UQ.parse_query(
            {"by": "user", "start": "2026-11-01", "end": "2027-01-01"}))
        assert {i["user"] for i in alice["items"]} == {"alice"}
        assert alice["totals"][0]["used"]["mem_avg_bytes"] == GiB and alice["totals"][0]["sessions"] == 1


def test_retention_prunes_old_raw_samples_but_keeps_the_reports_and_each_sessions_latest(db):
    for user, start, hours, slots in SESSIONS:
        run_session(db, user, start, hours, slots)
    live = add_session(db, "bob", T0, {"cpu": "1", "mem": str(GiB)})  # still running, sampled long ago
    with db.session() as s:
        A.record(s, live, T0 + timedelta(hours=1), Counters(cpu_seconds=3600))
    q = UQ.parse_query({"by": "user", "bucket": "day", "start": "2026-11-29", "end": "2026-12-03"})
    with db.session(readonly=True) as s:
        before = UQ.usage(s, Scope(everything=True), q)
        kept_latest = {sid: at for sid, at in s.execute(
            select(UsageSample.session_id, func.max(UsageSample.sampled_at)).group_by(UsageSample.session_id))}
        total = s.scalar(select(func.count()).select_from(UsageSample))
    with db.session() as s:
        gone = A.prune_samples(s, T0 + timedelta(days=30))  # everything is older than the cut
    with db.session(readonly=True) as s:
        left = {sid: at for sid, at in s.execute(select(UsageSample.session_id, UsageSample.sampled_at))}
        assert left == kept_latest and gone == total - len(kept_latest)  # one sample a session stays
        assert UQ.usage(s, Scope(everything=True), q) == before  # the reports read rollups: unchanged
    with db.session() as s:  # the live session's next sample counts from the kept one: no double count
        assert A.record(s, live, T0 + timedelta(hours=2), Counters(cpu_seconds=7200))
    with db.session(readonly=True) as s:
        used = s.scalar(select(func.sum(UsageHour.cpu_used)).where(UsageHour.session_id == live))
        assert used == pytest.approx(7200)
    with db.session() as s:
        assert A.prune_samples(s, T0 + timedelta(days=30)) == 1  # the live session's older one now
        assert A.prune_samples(s, T0 - timedelta(days=1)) == 0  # nothing that old is left


async def insert_usage(svc):
    for user, start, hours, slots in SESSIONS:
        run_session(svc.db, user, start, hours, slots)


template, svc = service_fixtures(setup=insert_usage)
PERIOD = "start=2026-11-01&end=2027-01-01"


async def test_rest_usage_shows_each_caller_their_reach(svc):
    status, got = await svc.call("root", "GET", f"usage?by=user&{PERIOD}&bucket=month")
    assert status == 200, got
    assert {t["user"] for t in got["totals"]} == {"alice", "bob", "olivia"}
    status, got = await svc.call("dadmin", "GET", f"usage?by=user&{PERIOD}")
    assert {t["user"] for t in got["totals"]} == {"alice", "bob"}  # their domain only
    status, got = await svc.call("alice", "GET", f"usage?{PERIOD}")  # users: by user by default
    assert status == 200 and got["by"] == "user" and {t["user"] for t in got["totals"]} == {"alice"}
    assert got["totals"][0]["allocated"]["gpu_hours"] == pytest.approx(4)
    status, got = await svc.call("alice", "GET", f"usage?by=domain&{PERIOD}")
    assert [t["domain"] for t in got["totals"]] == ["default"]  # her own usage within it, not bob's
    assert got["totals"][0]["allocated"]["cpu_core_hours"] == pytest.approx(8)
    for who, query in (("alice", "user=bob"), ("dadmin", "user=olivia"), ("dadmin", "domain=other"),
                       ("alice", "group=cv"), ("root", "user=nobody")):
        status, got = await svc.call(who, "GET", f"usage?{query}&{PERIOD}")
        assert status == 404 and got["field"] == query.split("=")[0], (who, query, got)
    status, got = await svc.call("dadmin", "GET", f"usage?group=ml&by=group&{PERIOD}")
    assert status == 200 and [UQ.label(t, "group") for t in got["totals"]] == ["default/ml"]


@pytest.mark.parametrize("query, field", [("by=colour", "by"), ("bucket=week", "bucket"), ("period=soon", "period"),
                                          ("start=2026-12-01&end=2026-11-01", "end"), ("since=2026-01-01", "since")])
async def test_rest_usage_bad_parameters_are_400_naming_the_field(svc, query, field):
    status, got = await svc.call("root", "GET", f"usage?{query}")
    assert status == 400 and got["field"] == field, got
    status, got = await svc.call("root", "GET", f"usage/plot.svg?{query}")
    assert status == 400 and got["field"] == field, got


async def test_rest_usage_plot_is_an_svg_of_the_same_numbers(svc):
    resp = await svc.fetch("root", "GET", f"usage/plot.svg?by=group&{PERIOD}")
    assert resp.code == 200 and resp.headers["Content-Type"] == "image/svg+xml"
    svg = resp.body.decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "default/ml" in svg and "other/ml" in svg and "GPU-hours allocated per group per day" in svg
    resp = await svc.fetch("alice", "GET", f"usage/plot.svg?chart=top&{PERIOD}")
    assert resp.code == 200 and "alice" in resp.body.decode() and "bob" not in resp.body.decode()
    status, got = await svc.call("root", "GET", "usage/plot.svg?chart=pie")
    assert status == 400 and got["field"] == "chart"
    status, _ = await svc.call(None, "GET", "usage")
    assert status == 401


# -- the official client's usage commands (backend.ai-client 23.9) --------------------------------------

@pytest.fixture(scope="module")
def client(backend_ai_cli, tmp_path_factory):
    from tests.integration.test_vfolder_compat import ForkedCLI

    forked = ForkedCLI(backend_ai_cli, tmp_path_factory.mktemp("bai-home"))
    yield forked
    forked.close()


async def client_function(backend_ai_cli, svc, who: str, call: str):
    """One of the client's Resource functions, through its own Python (what its CLI calls), as JSON."""
    import json
    import subprocess

    ak, sk = KEYS[who]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "BACKEND_ENDPOINT_TYPE": "api",
           "BACKEND_ENDPOINT": f"{svc.base}/services/backendai", "BACKEND_ACCESS_KEY": ak, "BACKEND_SECRET_KEY": sk}
    code = ("import json\nfrom ai.backend.client.session import Session\n"
            f"with Session() as s:\n    print(json.dumps(s.Resource.{call}))")
    r = await asyncio.to_thread(subprocess.run, [str(backend_ai_cli.with_name("python")), "-c", code], env=env,
                                capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


async def test_official_client_prints_our_monthly_usage(svc, client, tmp_path):
    from tests.integration.test_vfolder_compat import bai

    code, out = await bai(client, svc, tmp_path, "admin", "resource", "usage-per-month", "202612", "ml", "cv",
                          who="root")
    assert code == 0, out
    assert "Group: ml (ml)" in out and "Domain: default" in out and "Domain: other" in out
    assert "Identity: default / AKIAALICEALICEALICEA" in out and "Identity: default / AKIAOLIVIAOLIVIAOLIV" in out
    assert "Group: cv" not in out  # bob's session ended in November
    code, out = await bai(client, svc, tmp_path, "admin", "resource", "usage-per-month", "202611", "cv", who="root")
    assert code == 0 and "Group: cv (cv)" in out, out
    assert "Total CPU / Memory Used: 7200000.0 (s) / 1073741824 (bytes)" in out  # ms: 1 core for 2 h; peak
    assert "Image: python:3.11" in out and "Duration: 1 day(s)" in out
    # a user: their own containers only, in the same format
    code, out = await bai(client, svc, tmp_path, "admin", "resource", "usage-per-month", "202612", "ml", who="alice")
    assert code == 0 and "AKIAALICEALICEALICEA" in out and "OLIVIA" not in out, out
    code, out = await bai(client, svc, tmp_path, "admin", "resource", "usage-per-month", "2026-12", who="root")
    assert code != 0 and "400" in out and "month" in out


async def test_official_client_period_and_monthly_stats_functions(svc, backend_ai_cli):
    got = await client_function(backend_ai_cli, svc, "root", 'usage_per_period("ml", "20261130", "20261201")')
    assert sorted(g["domain_name"] for g in got) == ["default", "other"]
    mine = next(g for g in got if g["domain_name"] == "default")
    assert mine["g_cpu_allocated"] == 2.0 and mine["g_gpu_allocated"] == 1.0 and len(mine["c_infos"]) == 1
    assert mine["c_infos"][0]["cpu_used"] == pytest.approx(4 * 3600 * 1000)  # ms, one core busy for 4 h
    assert mine["c_infos"][0]["used_days"] == 2  # 30 Nov and 1 Dec
    bins = await client_function(backend_ai_cli, svc, "alice", "user_monthly_stats()")
    assert len(bins) == 2880 and set(bins[0]) == {"date", "num_sessions", "cpu_allocated", "mem_allocated",
                                                 "gpu_allocated", "io_read_bytes", "io_write_bytes", "disk_used"}


# -- the CLI: usage show, plot and export, on the database and through the service ---------------------

def run_cli(capsys, *args) -> tuple[int, str, str]:
    from backendai_hub.cli import main as cli_main_fn

    code = cli_main_fn(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_local_cli_shows_plots_and_exports_every_sessions_usage(svc, capsys, monkeypatch, tmp_path):
    import csv
    import io

    monkeypatch.delenv("BACKEND_ENDPOINT", raising=False)
    monkeypatch.setenv("BACKENDAI_HUB_CRYPT_KEY_FILE", str(tmp_path / "key"))
    url = str(svc.db.engine.url)
    code, out, err = run_cli(capsys, "--db-url", url, "usage", "export", "--by", "group", "--start", "2026-11-30",
                             "--end", "2026-12-02")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    got = {(r["bucket"][:10], r["group"]): float(r["allocated.gpu_hours"]) for r in rows}
    assert got == {("2026-11-30", "default/ml"): 2.0, ("2026-12-01", "default/ml"): 2.0,
                   ("2026-11-30", "default/cv"): 0.0, ("2026-12-01", "other/ml"): 2.0}
    code, out, err = run_cli(capsys, "--db-url", url, "usage", "show", "--by", "user", "--start", "2026-11-01")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["KEY", "SESSIONS", "HOURS"], err
    assert [line.split()[0] for line in lines[1:]] == ["alice", "olivia", "bob"]  # most GPU-hours first
    png = tmp_path / "usage.png"
    code, out, err = run_cli(capsys, "--db-url", url, "usage", "plot", "--by", "group", "--start", "2026-11-01",
                             "--out", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "3 groups" in err, err
    code, out, err = run_cli(capsys, "--db-url", url, "usage", "plot", "--out", str(tmp_path / "u.jpg"))
    assert code == 2 and ".png or .svg" in err
    with pytest.raises(SystemExit) as e:  # argparse's own refusal
        run_cli(capsys, "--db-url", url, "usage", "show", "--bucket", "week")
    assert e.value.code == 2 and "invalid choice: 'week'" in capsys.readouterr().err
    code, out, err = run_cli(capsys, "--db-url", url, "usage", "show", "--period", "fortnight")
    assert code == 2 and "period:" in err


async def test_remote_cli_sees_the_callers_reach(svc, capsys, monkeypatch, tmp_path):
    import csv
    import io

    from backendai_hub.cli import main as cli_main_fn

    ak, sk = KEYS["dadmin"]
    monkeypatch.setenv("BACKEND_ENDPOINT", f"{svc.base}/services/backendai")
    monkeypatch.setenv("BACKEND_ACCESS_KEY", ak)
    monkeypatch.setenv("BACKEND_SECRET_KEY", sk)
    code = await asyncio.to_thread(cli_main_fn, ["usage", "export", "--by", "user", "--start", "2026-11-01",
                                                 "--bucket", "month"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert {r["user"] for r in csv.DictReader(io.StringIO(out.out))} == {"alice", "bob"}  # not olivia (other)
    svg = tmp_path / "usage.svg"
    code = await asyncio.to_thread(cli_main_fn, ["usage", "plot", "--by", "domain", "--start", "2026-11-01",
                                                 "--out", str(svg)])
    assert code == 0 and "<svg" in svg.read_text() and "other" not in svg.read_text().split("<title>")[0]
    code = await asyncio.to_thread(cli_main_fn, ["usage", "show", "--user", "olivia"])
    assert code == 2 and "unknown user 'olivia'" in capsys.readouterr().err


async def test_usage_page_renders_charts_for_the_callers_reach(svc):
    resp = await svc.fetch("dadmin", "GET", "/services/backendai/usage?period=3m&bucket=month")
    page = resp.body.decode()
    assert resp.code == 200 and resp.headers["Content-Type"].startswith("text/html"), page[:300]
    assert "script" not in resp.headers["Content-Security-Policy"] and "<script" not in page
    assert page.count("<svg") == 4 and "domain default" in page
    assert "default/ml" in page and "default/cv" in page and "other/ml" not in page and "olivia" not in page
    resp = await svc.fetch("bob", "GET", "/services/backendai/usage")
    assert resp.code == 200 and resp.body.decode().count("<svg") == 1 and "alice" not in resp.body.decode()
    resp = await svc.fetch("bob", "GET", "/services/backendai/usage?bucket=week")
    assert resp.code == 400 and "bucket: &#x27;week&#x27; is not one of" in resp.body.decode()
    resp = await svc.fetch(None, "GET", "/services/backendai/usage")
    assert "/hub/api/oauth2/authorize" in resp.effective_url and "state=" in resp.effective_url  # to sign in


async def test_one_sessions_usage_over_its_life_for_its_owner_and_admins(svc):
    status, page = await svc.call("root", "GET", "sessions?user=alice&status=all")
    sid = page["items"][0]["id"]
    status, got = await svc.call("alice", "GET", f"sessions/{sid}/usage")
    assert status == 200, got
    assert (got["user"], got["group"], got["domain"], got["image"]) == ("alice", "ml", "default", "python:3.11")
    assert got["allocated"]["gpu_hours"] == pytest.approx(4) and got["used"]["cpu_seconds"] == pytest.approx(4 * 3600)
    assert got["started_at"].startswith("2026-11-30T22:00") and got["terminated_at"].startswith("2026-12-01T02:00")
    assert (await svc.call("dadmin", "GET", f"sessions/{sid}/usage"))[0] == 200
    for who in ("bob", "odadmin"):
        status, got = await svc.call(who, "GET", f"sessions/{sid}/usage")
        assert status == 404, (who, got)


class StandInEngine:
    """A stand-in for the Docker engine's stats API (the real one is in tests/docker/test_usage.py): it
    answers after half a second, as the engine answers at its next statistics tick."""

    def __init__(self):
        self.api = self

    def stats(self, container_id, stream, one_shot):
        time.sleep(0.5)
        return {"cpu_stats": {"cpu_usage": {"total_usage": int(container_id[-3:]) * 10**9}},
                "memory_stats": {"usage": GiB}}


def test_sampler_asks_the_engine_about_every_container_at_once_stand_in_engine(db):
    from backendai_hub.usage.sampling import Sampler

    sids = []
    for i in range(20):
        sid = add_session(db, ("alice", "bob", "olivia")[i % 3], datetime.now(UTC) - timedelta(minutes=5),
                          {"cpu": "1", "mem": str(GiB)})
        with db.session() as s:
            s.get(KernelSession, sid).container_id = f"{i + 1:064d}"
        sids.append(sid)
    sampler = Sampler(db, StandInEngine, concurrency=10)
    began = time.monotonic()
    assert sampler.run_once() == 20
    assert time.monotonic() - began < 4  # two rounds of answers, not twenty
    with db.session(readonly=True) as s:
        hours = s.scalars(select(UsageHour).where(UsageHour.session_id.in_(sids))).all()
        assert sum(h.cpu_used for h in hours) == pytest.approx(sum(range(1, 21)))
