"""Load: many simulated users sign in, list folders, upload small files and spawn against one real hub.

``python -m benchmarks load_test`` (200 users, 300 s, 10 of them spawning) or, for a short run,
``python -m benchmarks.load_test --users 20 --seconds 30 --spawners 2``. The environment sets the same:
BENCH_LOAD_USERS, BENCH_LOAD_SECONDS, BENCH_LOAD_SPAWNERS, BENCH_LOAD_THINK (seconds between a user's
actions), BENCH_LOAD_DB (``sqlite``, the default, or the URL of a PostgreSQL server's database, e.g. what
``scripts/ensure-postgres.sh`` prints: a fresh database is made on that server and dropped afterwards). Reported: requests and 5xx per route, p50/p95/p99 per route, and the RSS of the hub, the proxy
and the service at the start and the end of the run (and their peak). The goal: zero 5xx, memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp

from .common import REPO, print_table, stats

DESCRIPTION = ("load: N simulated users (200) sign in, list folders, upload 4 KiB files with tus, and some (10) "
               "spawn and stop, against one hub for D s (300): 5xx per route, p50/p95/p99, RSS of hub/proxy/"
               "service at start and end")

SPAWN_OPTIONS = {"resources": {"cpu": 1, "mem": "256m"}}
SMALL = 4096
API = "/services/backendai/api/v1/"


def _fixture(users: list[str], password: str) -> dict:
    return {
        "resource_policies": {"keypair": [{"name": "load", "allowed_vfolder_hosts": ["local"]}]},
        "domains": [{"name": "load", "description": "load test: no limits", "allowed_vfolder_hosts": ["local"]}],
        "groups": [{"name": "load", "domain": "load"}],
        "users": [{"username": u, "email": f"{u}@load.invalid", "domain": "load", "groups": ["load"],
                   "password": password} for u in users],
        "keypairs": [{"user": u, "resource_policy": "load"} for u in users],
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _processes(hub) -> dict[str, int]:
    """pids of the hub, its proxy (node) and its service."""
    from tests.hubproc import service_pid

    service = service_pid(hub)
    proxy = int((hub.state / "proxy.pid").read_text().strip())
    return {"hub": hub.proc.pid, "proxy": proxy, "service": service}


class Recorder:
    def __init__(self):
        self.times: dict[str, list[int]] = defaultdict(list)
        self.codes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, route: str, t0: int, code: int | str) -> None:
        self.times[route].append(time.perf_counter_ns() - t0)
        self.codes[route][str(code)] += 1

    def five_xx(self) -> int:
        return sum(n for codes in self.codes.values() for code, n in codes.items()
                   if code.startswith("5") or not code.isdigit())


class User:
    """One simulated user: a browser-like cookie session for sign-in, then an API token."""

    def __init__(self, base: str, name: str, password: str, rec: Recorder):
        self.base, self.name, self.password, self.rec = base, name, password, rec
        self.token: str | None = None
        self.uploads = 0

    async def request(self, session, route: str, method: str, url: str, expect: tuple[int, ...], **kw):
        t0 = time.perf_counter_ns()
        try:
            async with session.request(method, self.base + url, allow_redirects=False, **kw) as r:
                body = await r.read()
                self.rec.add(route, t0, r.status)
                if r.status not in expect:
                    raise RuntimeError(f"{method} {url}: {r.status} {body[:200]!r}")
                return r, body
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
            self.rec.add(route, t0, type(e).__name__)
            raise

    async def sign_in(self) -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                         timeout=aiohttp.ClientTimeout(total=120)) as s:
            await self.request(s, "GET /hub/login", "GET", "/hub/login", (200,))
            xsrf = next((c.value for c in s.cookie_jar if c.key == "_xsrf"), "")
            await self.request(s, "POST /hub/login", "POST", "/hub/login?next=", (302,),
                               data={"username": self.name, "password": self.password, "_xsrf": xsrf})
            if self.token is None:
                # signing in binds a new _xsrf cookie to the user: the form's is no longer valid
                xsrf = [c.value for c in s.cookie_jar if c.key == "_xsrf"][-1]
                _, body = await self.request(s, "POST /hub/api/users/<u>/tokens", "POST",
                                             f"/hub/api/users/{self.name}/tokens", (200, 201),
                                             json={"note": "load"}, headers={"X-XSRFToken": xsrf})
                self.token = json.loads(body)["token"]

    def auth(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    async def files(self, api) -> None:
        await self.request(api, "GET vfolders", "GET", API + "vfolders", (200,), headers=self.auth())
        self.uploads += 1
        created, _ = await self.request(
            api, "POST vfolders/<f>/uploads", "POST", API + f"vfolders/load/uploads?path=f{self.uploads % 50}.bin"
            "&overwrite=true", (201,), headers={**self.auth(), "Tus-Resumable": "1.0.0",
                                                "Upload-Length": str(SMALL)})
        location = created.headers["Location"]
        path = location.split("//", 1)[-1].split("/", 1)[-1] if location.startswith("http") else location
        await self.request(api, "PATCH uploads/<id>", "PATCH", "/" + path.lstrip("/"), (204,), data=os.urandom(SMALL),
                           headers={**self.auth(), "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                                    "Content-Type": "application/offset+octet-stream"})

    async def spawn_and_stop(self, api, ready_s: list[float]) -> None:
        t = time.monotonic()
        await self.request(api, "POST /hub/api/users/<u>/server", "POST", f"/hub/api/users/{self.name}/server",
                           (201, 202), json=SPAWN_OPTIONS, headers=self.auth())
        while True:
            _, body = await self.request(api, "GET /hub/api/users/<u>", "GET", f"/hub/api/users/{self.name}", (200,),
                                         headers=self.auth())
            spec = json.loads(body)["servers"].get("")
            if spec and spec["ready"]:
                break
            if not spec or not spec["pending"]:
                raise RuntimeError(f"{self.name}: the spawn stopped: {spec}")
            if time.monotonic() - t > 240:
                raise RuntimeError(f"{self.name}: not ready in 240 s")
            await asyncio.sleep(0.25)
        await self.request(api, "GET /user/<u>/api/status", "GET", f"/user/{self.name}/api/status", (200,),
                           headers=self.auth())
        ready_s.append(time.monotonic() - t)
        await self.request(api, "DELETE /hub/api/users/<u>/server", "DELETE", f"/hub/api/users/{self.name}/server",
                           (202, 204), headers=self.auth())
        while True:
            _, body = await self.request(api, "GET /hub/api/users/<u>", "GET", f"/hub/api/users/{self.name}", (200,),
                                         headers=self.auth())
            if "" not in json.loads(body)["servers"]:
                return
            await asyncio.sleep(0.25)


async def _drive(base: str, names: list[str], password: str, seconds: float, spawners: int, think: float,
                 rec: Recorder, errors: list[str], ready_s: list[float]) -> None:
    users = [User(base, n, password, rec) for n in names]
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=300)) as api:
        async def setup(u: User):
            await asyncio.sleep(random.random() * min(10.0, seconds / 4))  # arrivals spread, not all at once
            await u.sign_in()
            await u.request(api, "POST vfolders", "POST", API + "vfolders", (201,), json={"name": "load"},
                            headers=u.auth())

        results = await asyncio.gather(*(setup(u) for u in users), return_exceptions=True)
        errors += [f"setup {u.name}: {r}" for u, r in zip(users, results) if isinstance(r, Exception)]
        ready = [u for u, r in zip(users, results) if not isinstance(r, Exception)]
        deadline = time.monotonic() + seconds

        async def work(u: User, i: int):
            n = 0
            while time.monotonic() < deadline:
                try:
                    if n % 5 == 4:
                        await u.sign_in()  # signing in again, as a returning browser does
                    await u.files(api)
                    if i < spawners and n % 3 == 0:
                        await u.spawn_and_stop(api, ready_s)
                except Exception as e:  # recorded, and the user goes on
                    errors.append(f"{u.name}: {type(e).__name__}: {e}")
                n += 1
                await asyncio.sleep(think * (0.5 + random.random()))

        await asyncio.gather(*(work(u, i) for i, u in enumerate(ready)))


@contextlib.contextmanager
def _database(db: str):
    """The URL of our database for the run: None (the hub's SQLite file), or a fresh PostgreSQL database."""
    if db == "sqlite":
        yield None
        return
    from sqlalchemy import create_engine, text

    from backendai_hub.db import normalize_url

    name = "bench_load_" + secrets.token_hex(6)
    admin = create_engine(normalize_url(db), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{db.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(*, quick: bool = False, users: int | None = None, seconds: float | None = None,
        spawners: int | None = None, think: float | None = None, db: str | None = None) -> dict:
    db = db or os.environ.get("BENCH_LOAD_DB", "sqlite")
    with _database(db) as url:
        return _run(quick=quick, users=users, seconds=seconds, spawners=spawners, think=think, db_url=url)


def _run(*, quick: bool, users: int | None, seconds: float | None, spawners: int | None, think: float | None,
         db_url: str | None) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.hubproc import HubProcess, run_cli

    users = users or int(os.environ.get("BENCH_LOAD_USERS", 20 if quick else 200))
    seconds = seconds or float(os.environ.get("BENCH_LOAD_SECONDS", 30 if quick else 300))
    spawners = spawners if spawners is not None else int(os.environ.get("BENCH_LOAD_SPAWNERS", 2 if quick else 10))
    think = think or float(os.environ.get("BENCH_LOAD_THINK", 1.0))
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    hub = HubProcess(work, extra_env={"BACKENDAI_HUB_HOST_CAPACITY": "cpu=64,mem=64g",
                                      "BACKENDAI_HUB_CULL_INTERVAL": "3600"}, db_url=db_url)
    backend = "postgresql" if db_url else "sqlite"
    names = [f"load{secrets.token_hex(2)}{i:03d}" for i in range(users)]
    password = secrets.token_urlsafe(12)
    rec, errors, ready_s = Recorder(), [], []
    try:
        hub.start(timeout=90)
        fixture = work / "load-fixture.json"
        fixture.write_text(json.dumps(_fixture(names, password)))
        r = run_cli(hub, "fixture", "populate", str(fixture))
        if r.returncode != 0:
            raise RuntimeError(f"fixture populate failed: {r.stderr or r.stdout}")
        pids = _processes(hub)
        rss_start = {k: rss_kib(p) for k, p in pids.items()}
        peak = dict(rss_start)
        print(f"hub up at {hub.url} ({backend}); {users} users ({spawners} spawning) for {seconds:g} s, "
              f"think {think:g} s; load average {_load_average()}", flush=True)

        timeline: dict[str, list[float]] = {k: [] for k in pids}  # RSS at the end of each minute, MiB

        async def main():
            async def sample():
                started = time.monotonic()
                while True:
                    await asyncio.sleep(2)
                    minute = int((time.monotonic() - started) // 60)
                    for k, p in pids.items():
                        now_kib = rss_kib(p)
                        peak[k] = max(peak[k], now_kib)
                        if len(timeline[k]) <= minute:
                            timeline[k].append(round(now_kib / 1024, 1))
                        else:
                            timeline[k][minute] = round(now_kib / 1024, 1)

            sampler = asyncio.ensure_future(sample())
            try:
                await _drive(hub.url, names, password, seconds, spawners, think, rec, errors, ready_s)
            finally:
                sampler.cancel()

        t0 = time.monotonic()
        load_start = _load_average()
        asyncio.run(main())
        wall = time.monotonic() - t0
        load_end = _load_average()
        rss_end = {k: rss_kib(p) for k, p in pids.items()}
    finally:
        hub.stop(keep_sessions=spawners == 0)  # no spawns: no session network to take down
        hub.unmount_folders()
        logs = REPO / ".state" / "bench" / "load-logs"
        logs.mkdir(parents=True, exist_ok=True)
        if hub.log.exists():
            shutil.copy(hub.log, logs / "hub.log")
        shutil.rmtree(work, ignore_errors=True)
        print(f"hub log kept in {logs / 'hub.log'}")
    rows = {route: {**stats(ns, "ms"),
                    "5xx": sum(n for c, n in rec.codes[route].items() if c.startswith("5") or not c.isdigit())}
            for route, ns in sorted(rec.times.items())}
    print_table("Per route, ms (n requests; 5xx: server errors or failed connections)", rows, unit="ms",
                extra={route: {"5xx": str(r["5xx"])} for route, r in rows.items()})
    memory = {k: {"start_mib": round(rss_start[k] / 1024, 1), "end_mib": round(rss_end[k] / 1024, 1),
                  "peak_mib": round(peak[k] / 1024, 1), "by_minute_mib": timeline[k]} for k in pids}
    print("\nRSS (MiB): " + "; ".join(f"{k} {v['start_mib']} -> {v['end_mib']} (peak {v['peak_mib']})"
                                      for k, v in memory.items()))
    for k, v in memory.items():  # flat, or still growing at the end?
        print(f"  {k} at the end of each minute: {', '.join(map(str, v['by_minute_mib']))}")
    total = sum(len(v) for v in rec.times.values())
    print(f"{total} requests in {wall:.0f} s ({total / wall:.0f}/s); 5xx or connection errors: {rec.five_xx()}; "
          f"spawns ready: {len(ready_s)}; client-side errors: {len(errors)}; database {backend}; "
          f"load average at start {load_start}, at end {load_end} (1, 5, 15 min)")
    for e in errors[:10]:
        print("  " + re.sub(r"\s+", " ", e)[:300])
    return {"params": {"users": users, "seconds": seconds, "spawners": spawners, "think_s": think, "db": backend},
            "load_average": {"start": load_start, "end": load_end},
            "routes": rows, "memory": memory, "five_xx": rec.five_xx(), "requests": total, "wall_s": wall,
            "spawn_ready_s": stats([int(s * 1e9) for s in ready_s], "s") if ready_s else None,
            "errors": errors[:50], "error_count": len(errors),
            "status_codes": {r: dict(c) for r, c in rec.codes.items()}}


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m benchmarks.load_test", description=DESCRIPTION)
    p.add_argument("--users", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--spawners", type=int)
    p.add_argument("--think", type=float)
    p.add_argument("--db", help="sqlite (default) or a PostgreSQL URL (a fresh database is made on its server)")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    from .common import write_result

    print(write_result("load_test", run(quick=a.quick, users=a.users, seconds=a.seconds, spawners=a.spawners,
                                         think=a.think, db=a.db)))
