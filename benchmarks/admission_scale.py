"""A whole admission (resolve, admit with the GPU hook, release) with 10 000 users and 1 000 live sessions."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from backendai_hub import admission as S
from backendai_hub import fixtures as F
from backendai_hub.accelerators import Device, DeviceAllocator
from backendai_hub.accelerators.base import COUNT
from backendai_hub.db import Database, normalize_url
from backendai_hub.models import (
    GroupMember,
    KernelSession,
    KeyPair,
    KeyPairResourcePolicy,
    SessionStatus,
    User,
    UserRole,
    UserStatus,
)
from backendai_hub.policy import parse_slots

from .common import REPO, print_ratios, print_table, stats

DESCRIPTION = ("whole admission (resolve + admit with the GPU hook + release) with 10 000 users and "
               "1 000 live sessions, SQLite and PostgreSQL, ms; BENCH_ADMISSION_BEFORE=<rev> adds that "
               "revision's numbers side by side")

USERS = 10_000
LIVE = 1_000
GROUPS = 100  # one domain, 100 groups of 100 users
DEVICES = 8  # mock GPUs on 2 NUMA nodes; 7 held by live sessions, so a GPU request gets the last one
HOST_CPUS = 64
NUMA = {0: list(range(32)), 1: list(range(32, 64))}
CAPACITY = {"cpu": Decimal(4000), "mem": Decimal(16 * 2**40), "cuda.device": Decimal(DEVICES)}
REQUESTS = {"gpu": parse_slots("cpu=2,mem=4g,cuda.device=1", allow_zero=False),
            "cpu": parse_slots("cpu=2,mem=4g", allow_zero=False)}
N = 400  # admissions per backend and request kind
ROUNDS = 8
GOAL_P99_MS = 5.0
PG_ENV = ("BACKENDAI_HUB_BENCH_PG_URL", "BACKENDAI_HUB_TEST_PG_URL")
BEFORE_ENV = "BENCH_ADMISSION_BEFORE"


def _access_key(i: int) -> str:
    return f"AKBENCH{i:013d}"  # 20 characters, as issued keys


def populate(db: Database) -> None:
    """The tenancy (bulk inserts: 10 000 users with a keypair each) and 1 000 live sessions."""
    with db.session() as s:
        F.populate(s, db.secrets, {
            "resource_policies": {"keypair": [{"name": "gold", "max_concurrent_sessions": 4,
                                               "total_resource_slots": {"cpu": 16, "mem": "64g",
                                                                        "cuda.device": 2}}]},
            "domains": [{"name": "campus", "total_resource_slots": {"cpu": 4096, "mem": "16t",
                                                                     "cuda.device": 64}}],
            "groups": [{"name": f"g{g:03d}", "domain": "campus",
                        "total_resource_slots": {"cpu": 512, "mem": "2t", "cuda.device": 16}}
                       for g in range(GROUPS)]})
    with db.session() as s:
        domain_id = s.scalar(text("SELECT id FROM domains WHERE name = 'campus'"))
        policy_id = s.scalar(text(f"SELECT id FROM {KeyPairResourcePolicy.__tablename__} WHERE name = 'gold'"))
        groups = {name: gid for gid, name in s.execute(text("SELECT id, name FROM groups"))}
        now = datetime.now(timezone.utc)
        s.execute(insert(User), [
            {"id": i + 1, "username": f"user{i:05d}", "email": f"user{i:05d}@campus.example", "full_name": "",
             "password_hash": None, "role": UserRole.user, "status": UserStatus.active, "domain_id": domain_id,
             "main_access_key": _access_key(i), "created_at": now} for i in range(USERS)])
        s.execute(insert(KeyPair), [
            {"access_key": _access_key(i), "secret_key_encrypted": b"-", "user_id": i + 1, "is_active": True,
             "resource_policy_id": policy_id, "created_at": now} for i in range(USERS)])
        s.execute(insert(GroupMember), [{"group_id": groups[f"g{i % GROUPS:03d}"], "user_id": i + 1}
                                        for i in range(USERS)])
        rows = []
        for n in range(LIVE):  # every tenth user runs one session; 7 of them hold a GPU each
            i = n * (USERS // LIVE)
            alloc = {"cpuset": [n % HOST_CPUS]}
            slots = {"cpu": "1", "mem": str(2 * 2**30)}
            if n < DEVICES - 1:
                alloc = {"devices": {"cuda.device": {str(n): "1"}}, "numa_node": n * 2 // DEVICES,
                         "cpuset": [n * 8, n * 8 + 1]}
                slots["cuda.device"] = "1"
            rows.append({"user_id": i + 1, "server_name": "", "access_key": _access_key(i),
                         "group_id": groups[f"g{i % GROUPS:03d}"], "domain_id": domain_id, "image": "img",
                         "app": "jupyterlab", "slots": slots, "allocation": alloc,
                         "status": SessionStatus.running, "status_info": "", "created_at": now,
                         "started_at": now})
        s.execute(insert(KernelSession), rows)
    repair = getattr(S, "repair_usage", None)  # rows inserted behind admission's back: recount them
    if repair is not None:
        with db.session() as s:
            repair(s)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


def free_users() -> list[str]:
    """Users without a live session, in a fixed random order: each admission charges another one."""
    users = [f"user{i:05d}" for i in range(USERS) if i % (USERS // LIVE)]
    random.Random(16).shuffle(users)
    return users


# wall times of each step, and the CPU time of the admission in this thread (what it costs when the
# machine does not make it wait: on SQLite all of it, on PostgreSQL without the server's share)
PHASES = ("resolve", "admit", "admission", "release", "whole", "admission, client CPU")


class Admissions:
    """resolve, admit (as the spawner's attempt: + queue_position) and release, each its own transaction."""

    def __init__(self, db: Database):
        devices = [Device("mock", str(i), "cuda.device", Decimal(1), COUNT, numa_node=i * 2 // DEVICES, index=i)
                   for i in range(DEVICES)]
        self.db, self.allocator, self.users, self.step = db, DeviceAllocator(devices, NUMA), free_users(), 0

    def once(self, kind: str) -> tuple[int, ...]:
        db, clock, cpu = self.db, time.perf_counter_ns, time.thread_time_ns
        user = self.users[self.step % len(self.users)]
        self.step += 1
        c0 = cpu()
        t0 = clock()
        with db.session() as s:
            charge = S.resolve(s, user)
        t1 = clock()
        with db.session() as s:
            row = S.admit(s, charge, server_name="bench", image="img", app="jupyterlab", request=REQUESTS[kind],
                          capacity=CAPACITY, queue=True, host_cpus=HOST_CPUS, allocator=self.allocator)
            sid, status, allocation = row.id, row.status, dict(row.allocation or {})
            S.queue_position(s, sid)
        t2 = clock()
        c2 = cpu()
        with db.session() as s:
            S.release(s, sid, "stopped")
        t3 = clock()
        # a benchmark of the wrong path measures nothing: check each admission did what it should
        if status != SessionStatus.starting or (kind == "gpu") != ("devices" in allocation):
            raise AssertionError(f"{kind}: unexpected admission {status} {allocation}")
        if kind == "gpu" and allocation["devices"] != {"cuda.device": {str(DEVICES - 1): "1"}}:
            raise AssertionError(f"gpu: got {allocation['devices']}, expected the last free device")
        return t1 - t0, t2 - t1, t2 - t0, t3 - t2, t3 - t0, c2 - c0

    def round(self, n: int) -> dict[str, list[int]]:
        """``n`` admissions of each request kind, alternating: {"kind: phase": [ns, ...]}."""
        out = {f"{kind}: {phase}": [] for kind in REQUESTS for phase in PHASES}
        for _ in range(n):
            for kind in REQUESTS:
                for phase, ns in zip(PHASES, self.once(kind)):
                    out[f"{kind}: {phase}"].append(ns)
        return out


@contextlib.contextmanager
def sqlite_db(workdir: Path):
    db = Database(url=f"sqlite:///{workdir / 'bench.sqlite'}", crypt_key_file=str(workdir / "key"))
    try:
        yield db
    finally:
        db.dispose()


@contextlib.contextmanager
def pg_db(admin_url: str, workdir: Path):
    """A fresh database on the PostgreSQL server of ``admin_url``, dropped afterwards."""
    name = "bench_admission_" + uuid.uuid4().hex[:12]
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(url=f"{admin_url.rpartition('/')[0]}/{name}", crypt_key_file=str(workdir / "key"))
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_url() -> str | None:
    return next((os.environ[k] for k in PG_ENV if os.environ.get(k)), None)


def serve() -> None:
    """A worker: set every backend up, then answer ``round N`` lines with one JSON line of samples."""
    import backendai_hub

    print(f"measuring the package at {Path(backendai_hub.__file__).parent}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        workers = {}
        backends = [("sqlite", lambda: sqlite_db(Path(tmp)))]
        if pg_url():
            backends.append(("postgresql", lambda: pg_db(pg_url(), Path(tmp))))
        for backend, make in backends:
            db = stack.enter_context(make())
            db.upgrade()
            t = time.perf_counter()
            populate(db)
            print(f"{backend}: {USERS} users, {LIVE} live sessions in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr, flush=True)
            workers[backend] = Admissions(db)
            workers[backend].round(10)  # warm-up: caches, the ORM's compiled statements
        print(json.dumps({"ready": list(workers)}), flush=True)
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd != "round":
                break
            print(json.dumps({backend: w.round(int(arg)) for backend, w in workers.items()}), flush=True)


class Worker:
    """A worker process measuring the package of ``tree`` (this checkout, or an exported revision)."""

    def __init__(self, tree: Path):
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.admission_scale", "--serve"], cwd=tree,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.backends = self._read()["ready"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark worker exited ({self.proc.wait()})")
        return json.loads(line)

    def round(self, n: int) -> dict:
        self.proc.stdin.write(f"round {n}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        self.proc.wait(timeout=120)


def export(rev: str, into: Path) -> Path:
    """The package at ``rev`` (git archive) with this very benchmark beside it."""
    archive = subprocess.run(["git", "archive", rev, "backendai_hub", "benchmarks"], cwd=REPO,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for name in ("admission_scale.py", "common.py", "__init__.py"):
        shutil.copy(Path(__file__).with_name(name), into / "benchmarks" / name)
    return into


KEY_CASES = ("gpu: admit", "gpu: admission", "cpu: admit", "cpu: admission")
GOAL_CASES = ("gpu: admission", "cpu: admission")


def run(*, quick: bool = False, n: int | None = None, rounds: int = ROUNDS) -> dict:
    n = n or (N // 10 if quick else N)
    before_rev = os.environ.get(BEFORE_ENV) or None
    per_round = max(1, n // rounds)
    if not pg_url():
        print(f"PostgreSQL skipped: set {PG_ENV[0]} (bash scripts/ensure-postgres.sh prints a URL)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        workers = {"after": Worker(REPO)}
        try:
            if before_rev:
                workers["before"] = Worker(export(before_rev, Path(tmp)))
            samples: dict = {side: {} for side in workers}
            order = list(workers)
            for r in range(rounds):  # the sides take turns, first one then the other: drift lands on both
                for side in (order if r % 2 == 0 else order[::-1]):
                    for backend, cases in workers[side].round(per_round).items():
                        for case, xs in cases.items():
                            samples[side].setdefault(backend, {}).setdefault(case, []).extend(xs)
        finally:
            for w in workers.values():
                w.close()
    results = {side: {backend: {case: stats(xs, "ms") for case, xs in cases.items()}
                      for backend, cases in per.items()} for side, per in samples.items()}
    rows, ratios = {}, {}
    for backend, cases in results["after"].items():
        for case, s in cases.items():
            rows[f"{backend} {case}"] = s
            old = results.get("before", {}).get(backend, {}).get(case)
            if old:
                rows[f"{backend} {case} (before)"] = old
                if case in KEY_CASES:
                    ratios[f"{backend} {case}: after/before p50"] = s["p50"] / old["p50"]
                    ratios[f"{backend} {case}: after/before p99"] = s["p99"] / old["p99"]
    print_table(f"admission with {USERS} users and {LIVE} live sessions, GPU hook on ({DEVICES} mock GPUs), "
                f"{per_round * rounds} per backend and request kind; admit = admit transaction, admission = "
                f"resolve + admit (goal p99 < {GOAL_P99_MS} ms)", rows, unit="ms",
                columns=("n", "p50", "p95", "p99", "mean"),
                extra={k: {"goal": ("ok" if v["p99"] < GOAL_P99_MS else "MISSED")}
                       for k, v in rows.items() if k.endswith(GOAL_CASES)})
    if ratios:
        print_ratios(f"after / before ({before_rev})", ratios)
    return {"params": {"users": USERS, "live_sessions": LIVE, "groups": GROUPS, "devices": DEVICES,
                       "host_cpus": HOST_CPUS, "n": per_round * rounds, "rounds": rounds, "before": before_rev,
                       "goal_p99_ms": GOAL_P99_MS,
                       "requests": {k: {s: str(v) for s, v in r.items()} for k, r in REQUESTS.items()}},
            "results": results, "ratios": ratios}


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - the benchmark's own entry
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admission_scale", description=DESCRIPTION)
    parser.add_argument("-n", type=int, default=N, help="admissions per backend and request kind")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--serve", action="store_true", help="be a worker (run() starts them)")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
    else:
        run(n=args.n, rounds=args.rounds)


if __name__ == "__main__":  # pragma: no cover
    main()
