"""The web shell: terminal websocket echo round trips through the hub proxy against the same terminal reached
directly on the session's port, interleaved in one run; and spawn-to-prompt time of a shell session."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import requests

from .common import REPO, print_ratios, print_table, ratio, stats

DESCRIPTION = ("web shell: 1 000 terminal echoes (a line to `cat` and back) through the hub proxy vs directly on "
               "the session's port, interleaved rounds; shell spawn-to-prompt (POST to the first prompt)")


class Terminal:
    """One websocket to a Jupyter terminal (terminado's JSON protocol), tornado's client."""

    def __init__(self, url: str, token: str):
        self.url, self.token, self.ws = url, token, None

    async def open(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        self.ws = await websocket_connect(HTTPRequest(self.url, headers={"Authorization": f"token {self.token}"}))

    async def read_until(self, needle: str, timeout: float = 30) -> str:
        seen = ""
        end = time.monotonic() + timeout
        while needle not in seen:
            raw = await asyncio.wait_for(self.ws.read_message(), max(0.01, end - time.monotonic()))
            if raw is None:
                raise RuntimeError("the terminal's websocket closed")
            kind, *data = json.loads(raw)
            if kind == "stdout":
                seen += data[0]
        return seen

    async def drain(self, seconds: float = 0.3) -> None:
        try:
            while True:
                await asyncio.wait_for(self.ws.read_message(), seconds)
        except asyncio.TimeoutError:
            return

    async def echo(self, n: int) -> int:
        token = f"e{n:06d}"
        t0 = time.perf_counter_ns()
        await self.ws.write_message(json.dumps(["stdin", token + "\r"]))
        await self.read_until(token)
        return time.perf_counter_ns() - t0

    def close(self) -> None:
        self.ws.close()


async def _echoes(urls: dict[str, str], token: str, rounds: int, per_round: int, warmup: int) -> dict[str, list[int]]:
    first = Terminal(next(iter(urls.values())), token)
    await first.open()
    await first.drain(1.0)
    await first.ws.write_message(json.dumps(["stdin", "clear; stty -echo; cat\r"]))  # lines come back once
    await first.drain(1.0)
    first.close()
    samples: dict[str, list[int]] = {side: [] for side in urls}
    n = 0
    for r in range(rounds + 1):
        order = list(urls.items()) if r % 2 == 0 else list(reversed(urls.items()))
        for side, url in order:
            t = Terminal(url, token)
            await t.open()
            await t.drain()
            for _ in range(warmup if r == 0 else per_round):
                n += 1
                took = await t.echo(n)
                if r > 0:  # round 0 warms both paths up
                    samples[side].append(took)
            t.close()
    return samples


async def _first_prompt(url: str, token: str, deadline: float) -> None:
    while True:
        try:
            t = Terminal(url, token)
            await t.open()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    await t.read_until("$", timeout=max(1.0, deadline - time.monotonic()))
    t.close()


def run(*, quick: bool) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.hubproc import HubProcess, admin_token, hub_api, hub_token, server_path, session_container, \
        stop_server, wait_ready

    rounds, per_round, warmup = (2, 50, 20) if quick else (10, 100, 50)
    spawns = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-shell-") as state:
        hub = HubProcess(Path(state), extra_env={"BACKENDAI_HUB_CULL_INTERVAL": "3600"})
        hub.start(timeout=90)
        try:
            admin = admin_token(hub)
            demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
            ready_s, prompt_s = [], []
            for i in range(spawns):
                t0 = time.monotonic()
                r = hub_api(hub, demo, "POST", server_path("demo", "shell"), json={})
                assert r.status_code in (201, 202), r.text
                wait_ready(hub, demo, name="shell", timeout=180)
                ready_s.append(time.monotonic() - t0)
                name = f"prompt{i}"
                requests.post(f"{hub.url}/user/demo/shell/api/terminals", json={"name": name},
                              headers={"Authorization": f"token {demo}"}, timeout=30).raise_for_status()
                url = f"ws://127.0.0.1:{hub.port}/user/demo/shell/terminals/websocket/{name}"
                asyncio.run(_first_prompt(url, demo, t0 + 180))
                prompt_s.append(time.monotonic() - t0)
                if i < spawns - 1:
                    stop_server(hub, admin, "demo", "shell")
            c = session_container(hub, "demo", "shell")
            ip = next(n["IPAddress"] for n in c.attrs["NetworkSettings"]["Networks"].values() if n.get("IPAddress"))
            requests.post(f"{hub.url}/user/demo/shell/api/terminals", json={"name": "bench"},
                          headers={"Authorization": f"token {demo}"}, timeout=30).raise_for_status()
            path = "/user/demo/shell/terminals/websocket/bench"
            urls = {"through the hub proxy": f"ws://127.0.0.1:{hub.port}{path}",
                    "direct on the session's port": f"ws://{ip}:8888{path}"}
            samples = asyncio.run(_echoes(urls, demo, rounds, per_round, warmup))
            stop_server(hub, admin, "demo", "shell")
        finally:
            hub.stop()
    rows = {side: stats(xs, "ms") for side, xs in samples.items()}
    print_table("terminal echo round trip (ms)", rows)
    proxy, direct = rows["through the hub proxy"], rows["direct on the session's port"]
    ratios = {"proxy / direct, p50": ratio(proxy["p50"], direct["p50"]),
              "proxy / direct, p95": ratio(proxy["p95"], direct["p95"])}
    print_ratios("ratios (goal <= 2x at p50)", ratios)
    spawn = {"POST to ready (hub)": stats((int(s * 1e9) for s in ready_s), "s"),
             "POST to first prompt": stats((int(s * 1e9) for s in prompt_s), "s")}
    print_table("shell session spawn (s)", spawn)
    return {"stats": rows, "ratios": ratios, "spawn": spawn,
            "params": {"rounds": rounds, "per_round": per_round, "warmup": warmup, "spawns": spawns}}
