"""Audit log overhead: a writing REST request with its audit row against the same handler without one."""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .common import REPO, print_ratios, print_table, ratio, stats

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backendai_hub import signing  # noqa: E402
from tests.integration.service_harness import API, KEYS, make_template  # noqa: E402

DESCRIPTION = ("Audit log: signed PATCH api/v1/users/<u> with its audit row vs the same handler unaudited "
               "(service in its own process, SQLite), and a signed GET as the floor, milliseconds")

N = 400
ROUNDS = 10
WARMUP = 40
ACTOR = "root"
AUDITED = API + "users/alice"
UNAUDITED = "/bench/unaudited/users/alice"
READ = API + "users/alice"


def _serve(template: str, workdir: str, conn, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def main():
        from backendai_hub.service.users import UserHandler
        from tests.integration.service_harness import Service

        class Unaudited(UserHandler):
            audited = False  # the same handler, writing no audit row

        svc = Service(Path(template), Path(workdir))
        svc.app.settings["log_function"] = lambda handler: None
        svc.app.wildcard_router.add_rules([(r"/bench/unaudited/users/([^/]+)", Unaudited)])
        conn.send(svc.port)
        await asyncio.Event().wait()

    asyncio.run(main())


class Client:
    def __init__(self, port: int):
        self.host = f"127.0.0.1:{port}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._last: datetime | None = None

    def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes, int]:
        date = datetime.now(timezone.utc)
        if self._last is not None and date <= self._last:
            date = self._last + timedelta(microseconds=1)
        self._last = date
        ak, sk = KEYS[ACTOR]
        headers = signing.sign(method, path, host=self.host, access_key=ak, secret_key=sk, date=date,
                               content_type="application/json")
        headers["Content-Type"] = "application/json"
        t0 = time.perf_counter_ns()
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter_ns() - t0


KINDS = {
    "signed PATCH users/alice, audited": ("PATCH", AUDITED),
    "signed PATCH users/alice, no audit row": ("PATCH", UNAUDITED),
    "signed GET users/alice (no write)": ("GET", READ),
}


def _measure(client: Client, n: int, warmup: int) -> dict[str, list[int]]:
    counter = iter(range(10**9))

    def once(kind: str) -> int:
        method, path = KINDS[kind]
        body = json.dumps({"full_name": f"Alice {next(counter)}"}).encode() if method == "PATCH" else None
        status, data, dt = client.request(method, path, body)
        if status != 200:
            raise RuntimeError(f"{kind}: {status} {data[:300]!r}")
        return dt

    for kind in KINDS:
        for _ in range(warmup):
            once(kind)
    samples: dict[str, list[int]] = {k: [] for k in KINDS}
    for _ in range(ROUNDS):
        for kind in KINDS:
            samples[kind] += [once(kind) for _ in range(max(1, n // ROUNDS))]
    return samples


def run(*, quick: bool = False) -> dict:
    from .service_latency import _pin

    n, warmup = (N // 10, WARMUP // 4) if quick else (N, WARMUP)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        tmp = Path(tmp)
        (tmp / "template").mkdir()
        (tmp / "server").mkdir()
        template = make_template(tmp / "template")
        cpu, affinity = _pin()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(str(template), str(tmp / "server"), child, cpu), daemon=True)
        proc.start()
        try:
            if not parent.poll(60):
                raise RuntimeError("the service process did not report its port within 60 s")
            client = Client(parent.recv())
            samples = _measure(client, n, warmup)
            client.conn.close()
        finally:
            proc.terminate()
            proc.join(10)
            if affinity:
                os.sched_setaffinity(0, affinity)
    st = {k: stats(v, "ms") for k, v in samples.items()}
    a, u = st["signed PATCH users/alice, audited"], st["signed PATCH users/alice, no audit row"]
    ratios = {"audited / unaudited write, p50": ratio(a["p50"], u["p50"]),
              "audited / unaudited write, p95": ratio(a["p95"], u["p95"]),
              "audited / unaudited write, mean": ratio(a["mean"], u["mean"])}
    print_table(f"Signed writes, {n} per kind, interleaved in {ROUNDS} rounds (SQLite)", st, unit="ms")
    print_ratios("Ratios (goal: < 1.10)", ratios)
    return {"params": {"n": n, "rounds": ROUNDS, "warmup": warmup, "db": "sqlite (harness template)"},
            "http": st, "ratios": ratios}


if __name__ == "__main__":  # pragma: no cover
    run()
