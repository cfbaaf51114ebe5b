"""App websocket round trip through the hub proxy against the same app reached directly on the session's
port: the Shiny echo app of the R image, 1 000 echoes per side, in one run."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from .common import REPO, print_ratios, print_table, ratio, stats

DESCRIPTION = ("Shiny websocket round trip (an input update until its output comes back) through the hub proxy "
               "(configurable-http-proxy -> jupyter-server -> jupyter-server-proxy -> R) against direct to R on "
               "the session's port 3838; one session, both clients interleaved; goal <= 2x at p50")

R_IMAGE = "backendai-hub/r:latest"
SMALL = {"cpu": 1, "mem": "1g"}


async def _measure(clients: dict, rounds: int, per_round: int, warmup: int) -> dict[str, list[int]]:
    for c in clients.values():
        await c.connect()
        for i in range(warmup):
            await c.echo(f"warm{i}")
    samples: dict[str, list[int]] = {side: [] for side in clients}
    n = 0
    for r in range(rounds):
        order = list(clients.items()) if r % 2 == 0 else list(reversed(clients.items()))
        for side, c in order:
            for _ in range(per_round):
                n += 1
                samples[side].append(await c.echo(f"m{n}"))
    for c in clients.values():
        c.close()
    return samples


def run(*, quick: bool) -> dict:
    sys.path.insert(0, str(REPO))
    import requests

    from tests.hubproc import HubProcess, admin_token, hub_api, hub_token, server_path, session_container, \
        stop_server, wait_ready
    from tests.shiny_client import ShinyEcho

    rounds, per_round, warmup = (2, 50, 10) if quick else (10, 100, 50)
    with tempfile.TemporaryDirectory(prefix="bench-apps-") as state:
        hub = HubProcess(Path(state), extra_env={
            "BACKENDAI_HUB_CULL_INTERVAL": "3600",
            "BACKENDAI_HUB_EXTRA_CONFIG": str(Path(__file__).with_name("apps_direct_config.py"))})
        hub.start(timeout=90)
        try:
            admin = admin_token(hub)
            demo = hub_token(hub, "demo", hub.credentials["demo"]["password"])
            r = hub_api(hub, demo, "POST", server_path("demo", "bench"),
                        json={"image": R_IMAGE, "app": "shiny", "resources": SMALL})
            assert r.status_code in (201, 202), r.text
            wait_ready(hub, demo, name="bench", timeout=180)
            auth = {"Authorization": f"token {demo}"}
            page = f"{hub.url}/user/demo/bench/shiny/"
            assert requests.get(page, headers=auth, timeout=120).status_code == 200  # starts R
            c = session_container(hub, "demo", "bench")
            ip = c.attrs["NetworkSettings"]["Networks"][hub.network]["IPAddress"]
            clients = {"through the hub proxy": ShinyEcho(page.replace("http://", "ws://") + "websocket/", auth),
                       "direct (session port 3838)": ShinyEcho(f"ws://{ip}:3838/websocket/")}
            samples = asyncio.run(_measure(clients, rounds, per_round, warmup))
            stop_server(hub, admin, "demo", "bench")
        finally:
            hub.stop()
    rows = {side: stats(xs, "ms") for side, xs in samples.items()}
    print_table("Shiny websocket round trip (ms)", rows)
    proxy, direct = rows["through the hub proxy"], rows["direct (session port 3838)"]
    ratios = {"proxy / direct, p50": ratio(proxy["p50"], direct["p50"]),
              "proxy / direct, p95": ratio(proxy["p95"], direct["p95"])}
    print_ratios("ratios (goal <= 2x at p50)", ratios)
    return {"stats": rows, "ratios": ratios, "goal_p50_ratio": 2.0,
            "params": {"rounds": rounds, "per_round": per_round, "warmup": warmup,
                       "echoes_per_side": rounds * per_round}}
