"""Code-log overhead on a cell: execute round trip with logging on against off, side by side, in one hub."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from .common import REPO, print_ratios, print_table, ratio, stats

DESCRIPTION = ("execute round trip (execute_request -> execute_reply) through the proxy, code logging on "
               "against off: two sessions of one user in one hub, interleaved; 'pass' and a 10 KiB cell")

SMALL = {"cpu": 1, "mem": "1g"}
CODES = {"pass": "pass", "10 KiB": "x = 0\n" + "x += 1\n" * 1462}


class Kernel:
    """A kernel of a session, driven over the server's websocket (JSON protocol) through the proxy."""

    def __init__(self, hub, token: str, server: str):
        self.hub, self.token, self.server = hub, token, server
        self.base = f"{hub.url}/user/demo/{server}/"
        self.ws = None
        self.session = uuid.uuid4().hex

    async def start(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        r = requests.post(f"{self.base}api/kernels", json={"name": "python3"},
                          headers={"Authorization": f"token {self.token}"}, timeout=60)
        r.raise_for_status()
        kid = r.json()["id"]
        url = f"ws://127.0.0.1:{self.hub.port}/user/demo/{self.server}/api/kernels/{kid}/channels"
        self.ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {self.token}"}))

    async def execute(self, code: str) -> int:
        """One execute round trip, in ns: from sending the request to its execute_reply."""
        msg_id = uuid.uuid4().hex
        msg = {"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "demo",
                          "session": self.session, "version": "5.3", "date": ""},
               "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
               "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                           "allow_stdin": False, "stop_on_error": True}}
        t0 = time.perf_counter_ns()
        await self.ws.write_message(json.dumps(msg))
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), 60)
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            if isinstance(raw, bytes):
                continue
            m = json.loads(raw)
            if m.get("msg_type") == "execute_reply" and m.get("parent_header", {}).get("msg_id") == msg_id:
                return time.perf_counter_ns() - t0


async def _measure(kernels: dict[str, Kernel], rounds: int, per_round: int, warmup: int) -> dict[str, list[int]]:
    for k in kernels.values():
        await k.start()
        for _ in range(warmup):
            for code in CODES.values():
                await k.execute(code)
    samples: dict[str, list[int]] = {f"{side}, {c}": [] for c in CODES for side in kernels}
    for r in range(rounds):
        order = list(kernels.items()) if r % 2 == 0 else list(reversed(kernels.items()))
        for side, k in order:
            for cname, code in CODES.items():
                for _ in range(per_round):
                    samples[f"{side}, {cname}"].append(await k.execute(code))
    return samples


def run(*, quick: bool) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.hubproc import HubProcess, admin_token, hub_api, hub_token, run_cli, server_path, service_api, \
        stop_server, wait_ready

    rounds, per_round, warmup = (2, 10, 5) if quick else (10, 50, 30)
    with tempfile.TemporaryDirectory(prefix="bench-code-log-") as state:
        hub = HubProcess(Path(state), extra_env={"BACKENDAI_HUB_CULL_INTERVAL": "3600"})
        hub.start(timeout=90)
        try:
            admin = admin_token(hub)
            demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
            assert run_cli(hub, "group", "update", "ml", "-d", "default", "--code-log").returncode == 0
            for server, group in (("on", "ml"), ("off", "default")):
                r = hub_api(hub, demo, "POST", server_path("demo", server), json={"group": group, "resources": SMALL})
                assert r.status_code in (201, 202), r.text
            for server in ("on", "off"):
                wait_ready(hub, demo, name=server, timeout=180)
            kernels = {"logging on": Kernel(hub, demo, "on"), "logging off": Kernel(hub, demo, "off")}
            samples = asyncio.run(_measure(kernels, rounds, per_round, warmup))
            time.sleep(4)  # let the last batch ship
            recorded = service_api(hub, admin, "GET", "code-logs", params={"server": "on", "limit": 1}).json()["total"]
            off = service_api(hub, admin, "GET", "code-logs", params={"server": "off", "limit": 1}).json()["total"]
            for server in ("on", "off"):
                stop_server(hub, admin, "demo", server)
        finally:
            hub.stop()
    rows = {label: stats(xs, "ms") for label, xs in samples.items()}
    print_table("execute round trip through the proxy (ms)", rows)
    ratios = {}
    for cname in CODES:
        on, off_ = rows[f"logging on, {cname}"], rows[f"logging off, {cname}"]
        ratios[f"{cname}: on / off, p50"] = ratio(on["p50"], off_["p50"])
        ratios[f"{cname}: on / off, p95"] = ratio(on["p95"], off_["p95"])
    print_ratios("ratios", ratios)
    added = {cname: rows[f"logging on, {cname}"]["p50"] - rows[f"logging off, {cname}"]["p50"] for cname in CODES}
    for cname, ms in added.items():
        print(f"  added at p50, {cname}: {ms:.3f} ms (goal < 5 ms)")
    executed = (warmup + rounds * per_round) * len(CODES)
    print(f"  records stored: on {recorded} of {executed} executions, off {off}")
    return {"stats": rows, "ratios": ratios, "added_p50_ms": added, "records_on": recorded, "records_off": off,
            "executions_per_side": executed,
            "params": {"rounds": rounds, "per_round": per_round, "warmup": warmup, "protocol": "JSON (legacy)"}}
