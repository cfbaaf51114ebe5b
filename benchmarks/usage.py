"""Usage accounting: the usage query over 1 000 000 samples (100 users x a month) on SQLite and
PostgreSQL, from the hourly rollups against the same answer computed from the raw samples; and the
cost of sampling one running session (the engine's one-shot stats, the parse, the recorded sample)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .common import REPO, print_ratios, print_table, ratio, stats, time_calls

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import insert, select, text  # noqa: E402

from backendai_hub import fixtures as F  # noqa: E402
from backendai_hub.models import KernelSession, SessionStatus, User  # noqa: E402
from backendai_hub.session_query import Scope  # noqa: E402
from backendai_hub.usage import accounting as A  # noqa: E402
from backendai_hub.usage import query as UQ  # noqa: E402
from backendai_hub.usage.models import UsageDay, UsageHour, UsageSample  # noqa: E402
from benchmarks.admission_scale import pg_db, pg_url, sqlite_db  # noqa: E402

DESCRIPTION = ("Usage: GET usage's query for a month by group over 1 000 000 samples (100 users x 30 days), "
               "rollups vs raw samples, SQLite and PostgreSQL, ms; sampling cost per running session")

USERS, GROUPS, DOMAINS = 100, 10, 2
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAYS = 30
GiB = 1 << 30


def ak(i: int) -> str:
    return "AKIABENCH" + "".join("ABCDEFGHIJ"[int(c)] for c in f"{i:011d}")  # base32 letters only


def tenancy() -> dict:
    return {"domains": [{"name": f"d{i}"} for i in range(DOMAINS)],
            "groups": [{"name": f"g{i}", "domain": f"d{i % DOMAINS}"} for i in range(GROUPS)],
            "users": [{"username": f"u{i:03d}", "email": f"u{i}@example.com", "domain": f"d{(i % GROUPS) % DOMAINS}",
                       "groups": [f"g{i % GROUPS}"]} for i in range(USERS)],
            "keypairs": [{"user": f"u{i:03d}", "access_key": ak(i), "secret_key": f"s{i:039d}"}
                         for i in range(USERS)]}


def populate(db, samples: int) -> dict:
    """One session per user for the whole month, sampled evenly: ``samples`` in all, with their hours
    computed by the accounting's own pure split (what the write path adds), bulk-inserted."""
    per_user = samples // USERS
    step = timedelta(days=DAYS) / per_user
    t0 = time.perf_counter()
    with db.session() as s:
        F.populate(s, db.secrets, tenancy())
    with db.session() as s:
        sids = []
        for u in s.scalars(select(User).order_by(User.username)):
            gpu = int(u.username[1:]) % 4 == 0
            row = KernelSession(user_id=u.id, server_name="", access_key=ak(int(u.username[1:])),
                                group_id=u.groups[0].id, domain_id=u.domain_id, image="python:3.11",
                                slots={"cpu": "2", "mem": str(4 * GiB), **({"cuda.device": "1"} if gpu else {})},
                                allocation={}, status=SessionStatus.terminated, created_at=START, started_at=START,
                                terminated_at=START + timedelta(days=DAYS))
            s.add(row)
            s.flush()
            sids.append((row.id, row.user_id, row.group_id, row.domain_id, row.access_key, A.allocated(row.slots)))
    n = 0
    for sid, uid, gid, did, key, alloc in sids:
        hours: dict = {}
        rows, prev, t = [], None, START
        for i in range(1, per_user + 1):
            at = START + step * i
            cur = A.Counters(cpu_seconds=i * step.total_seconds() * 0.6, mem_bytes=GiB + (i % 7) * 2**26,
                             mem_peak=2 * GiB, disk_read=i * 4096, net_rx=i * 1500, accel_util=40.0)
            for hour, add in A.spread(t, at, prev, cur, alloc).items():
                h = hours.setdefault(hour, {k: 0 for k in A.HOUR_FIELDS} | {"mem_peak": 0})
                for k in A.HOUR_FIELDS:
                    h[k] += add[k]
                h["mem_peak"] = max(h["mem_peak"], int(add["mem_peak"]))
            rows.append({"session_id": sid, "sampled_at": at, "final": i == per_user, **cur.__dict__})
            prev, t = cur, at
        with db.session() as s:
            for chunk in range(0, len(rows), 5000):
                s.execute(insert(UsageSample), rows[chunk:chunk + 5000])
            for model, when, rollup in ((UsageHour, "hour", hours), (UsageDay, "day", A.by_day(hours))):
                s.execute(insert(model), [{when: t, "session_id": sid, "user_id": uid, "group_id": gid,
                                           "domain_id": did, "access_key": key,
                                           **{k: (int(v) if k in A.INT_FIELDS else v) for k, v in h.items()}}
                                          for t, h in rollup.items()])
        n += len(rows)
    with db.session() as s:
        s.execute(text("ANALYZE"))  # fresh statistics for the planner, as a live database has them
        hours_rows = s.scalar(select(text("count(*)")).select_from(UsageHour))
        day_rows = s.scalar(select(text("count(*)")).select_from(UsageDay))
    return {"samples": n, "hour_rows": hours_rows, "day_rows": day_rows,
            "populate_s": round(time.perf_counter() - t0, 1)}


RAW = """
SELECT g, sum(dcpu), sum(alloc_s) FROM (
  SELECT k.group_id AS g,
         s.cpu_seconds - coalesce(lag(s.cpu_seconds) OVER w, 0) AS dcpu,
         (julianday(s.sampled_at) - julianday(coalesce(lag(s.sampled_at) OVER w, k.started_at))) * 86400 AS alloc_s
  FROM usage_samples s JOIN sessions k ON k.id = s.session_id
  WHERE s.sampled_at >= :start AND s.sampled_at < :end
  WINDOW w AS (PARTITION BY s.session_id ORDER BY s.sampled_at)) x GROUP BY g
"""
RAW_PG = RAW.replace("(julianday(s.sampled_at) - julianday(coalesce(lag(s.sampled_at) OVER w, k.started_at))) * 86400",
                     "extract(epoch from s.sampled_at - coalesce(lag(s.sampled_at) OVER w, k.started_at))")


def measure_queries(db, n: int) -> dict:
    month = {"by": "group", "bucket": "day", "start": "2026-11-01", "end": "2026-12-01"}
    cases = {
        "month by group, per day": (Scope(everything=True), month),
        "30 days to mid-day by group, per day": (Scope(everything=True), {
            "by": "group", "bucket": "day", "period": "30d", "end": "2026-11-30T13:00:00Z"}),
        "month by group, per month": (Scope(everything=True), {**month, "bucket": "month"}),
        "month by user, per day": (Scope(everything=True), {**month, "by": "user"}),
        "month, one domain admin": (Scope(domains=frozenset({"d0"}), username="u000"), month),
        "month, one user": (Scope(username="u007"), {**month, "by": "user"}),
    }
    out = {}
    for label, (scope, raw) in cases.items():
        q = UQ.parse_query(raw)

        def run(q=q, scope=scope):
            with db.session(readonly=True) as s:
                got = UQ.usage(s, scope, q)
            assert got["totals"], label

        out[label] = stats(time_calls(run, n, warmup=2), "ms")
    sql = RAW_PG if db.engine.dialect.name == "postgresql" else RAW
    params = {"start": START, "end": START + timedelta(days=DAYS)}

    def raw():
        with db.session(readonly=True) as s:
            s.execute(text(sql), params).all()

    out["raw samples (window deltas), by group"] = stats(time_calls(raw, max(3, n // 5), warmup=1), "ms")
    return out


def measure_sampling(db, n: int) -> dict:
    """One sample of one running session: the write (a transaction), and with Docker the engine's stats."""
    out = {}
    with db.session() as s:
        u = s.scalars(select(User).where(User.username == "u001")).one()
        row = KernelSession(user_id=u.id, server_name="live", access_key=ak(1), group_id=u.groups[0].id,
                            domain_id=u.domain_id, image="python:3.11", slots={"cpu": "1", "mem": str(GiB)},
                            allocation={}, status=SessionStatus.running, created_at=START, started_at=START)
        s.add(row)
        s.flush()
        sid = row.id
    clock = [START]

    def write():
        clock[0] += timedelta(seconds=60)
        with db.session() as s:
            A.record(s, sid, clock[0], A.Counters(cpu_seconds=(clock[0] - START).total_seconds() / 2, mem_bytes=GiB))

    out["record one sample (transaction)"] = stats(time_calls(write, n, warmup=5), "ms")
    return out


def measure_engine(n: int) -> dict:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as e:  # no engine here: the write path alone is measured
        return {"skipped": f"no Docker engine: {e}"}
    from backendai_hub.usage.sampling import counters_from_stats

    image = next((t for i in client.images.list() for t in i.tags), None)
    if image is None:
        return {"skipped": "no image in the engine"}
    c = client.containers.run(image, ["sleep", "600"], detach=True, remove=True, network_mode="none")
    try:
        stats_ns = time_calls(lambda: client.api.stats(c.id, stream=False, one_shot=True), n, warmup=3)
        sample = client.api.stats(c.id, stream=False, one_shot=True)
        cpu0 = time.process_time()
        for _ in range(n):
            client.api.stats(c.id, stream=False, one_shot=True)
        cpu = (time.process_time() - cpu0) / n
        parse = time_calls(lambda: counters_from_stats(sample), 2000, warmup=100)
    finally:
        c.kill()
    return {"rows": {"engine one-shot stats (wall)": stats(stats_ns, "ms"),
                     "parse the stats": stats(parse, "us")},
            "sampler_cpu_ms_per_session": round(cpu * 1000, 3), "image": image}


def run(*, quick: bool = False) -> dict:
    samples = 100_000 if quick else 1_000_000
    n = 5 if quick else 20
    result = {"parameters": {"samples": samples, "users": USERS, "groups": GROUPS, "days": DAYS, "n": n},
              "backends": {}}
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", lambda: sqlite_db(Path(tmp)))]
        if pg_url():
            backends.append(("postgresql", lambda: pg_db(pg_url(), Path(tmp))))
        for backend, make in backends:
            with contextlib.ExitStack() as stack:
                db = stack.enter_context(make())
                db.upgrade()
                info = populate(db, samples)
                print(f"{backend}: {info}", file=sys.stderr, flush=True)
                rows = measure_queries(db, n)
                rows.update(measure_sampling(db, 10 * n))
                print_table(f"usage on {backend} ({info['samples']:,} samples, {info['hour_rows']:,} hour rows)",
                            rows, unit="ms")
                ratios = {"raw samples / rollups (month by group)": ratio(
                    rows["raw samples (window deltas), by group"]["p50"], rows["month by group, per day"]["p50"])}
                print_ratios(f"{backend}: ratios at p50", ratios)
                result["backends"][backend] = {"populate": info, "rows": rows, "ratios": ratios,
                                               "goal_month_by_group_ms": 200,
                                               "met": rows["month by group, per day"]["p95"] < 200}
    # the engine part starts a container: run it where the engine is free (BENCH_USAGE_ENGINE=0 skips it)
    engine = measure_engine(n if not quick else 5) if os.environ.get("BENCH_USAGE_ENGINE", "1") != "0" else {
        "skipped": "BENCH_USAGE_ENGINE=0"}
    if "rows" in engine:
        print_table("sampling one running session", engine["rows"])
        print(f"\n  sampler CPU per session per pass: {engine['sampler_cpu_ms_per_session']} ms", flush=True)
    result["engine"] = engine
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
