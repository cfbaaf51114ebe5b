"""Usage accounting on real sessions: a container burns a known amount of CPU and the service's samples
show it within 10 %; mock-GPU hours add up across a hub restart with neither a gap nor a double count."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.hubproc import (admin_token, hub_api, hub_fixture, server_path, service_api, session_container,
                           stop_server, until, wait_ready)

pytestmark = pytest.mark.docker

hub = hub_fixture("usage", BACKENDAI_HUB_USAGE_INTERVAL="2", BACKENDAI_HUB_CULL_INTERVAL="5",
                  BACKENDAI_HUB_EXTRA_CONFIG=str(Path(__file__).with_name("usage_config.py")))
BURN = 6.0  # CPU seconds the session burns


def session_usage(hub, token, name: str) -> dict:
    """The usage of demo's session ``name`` (the latest by that name), from the per-session totals."""
    r = service_api(hub, token, "GET", "sessions?user=demo&status=all&limit=100")
    assert r.status_code == 200, r.text
    rows = [s for s in r.json()["items"] if s["name"] == name]
    assert rows, r.json()
    row = max(rows, key=lambda s: s["id"])
    r = service_api(hub, token, "GET", "usage?by=user&user=demo&period=1d&bucket=hour")
    assert r.status_code == 200, r.text
    return {"session": row, "totals": r.json()["totals"][0] if r.json()["totals"] else None}


def used_cpu(hub, token) -> float:
    got = session_usage(hub, token, "burn")["totals"]
    return got["used"]["cpu_seconds"] if got else 0.0


def test_a_session_burning_known_cpu_shows_it_within_ten_percent(hub):
    admin = admin_token(hub)
    r = hub_api(hub, admin, "POST", server_path("demo", "burn"), json={"resources": {"cpu": 1, "mem": "512m"}})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, admin, "demo", "burn")
    time.sleep(5)  # the server has settled; a few samples are in
    first = until("a first sample", lambda: used_cpu(hub, admin) or None, 30)
    t_first = time.monotonic()
    time.sleep(6)
    before, t_before = used_cpu(hub, admin), time.monotonic()
    idle_rate = (before - first) / (t_before - t_first)  # what the idle server uses, CPU s per s
    code, out = session_container(hub, "demo", "burn").exec_run(
        ["python3", "-c", f"import time\nwhile time.process_time() < {BURN}: pass\nprint(time.process_time())"])
    assert code == 0, out
    time.sleep(6)  # past the next samples
    after, t_after = used_cpu(hub, admin), time.monotonic()
    expected = BURN + idle_rate * (t_after - t_before)
    assert after - before == pytest.approx(expected, rel=0.10), (first, before, after, idle_rate)
    assert idle_rate < 0.2
    stop_server(hub, admin, "demo", "burn")
    got = session_usage(hub, admin, "burn")
    row, totals = got["session"], got["totals"]
    assert row["status"] == "terminated"
    held = (datetime.fromisoformat(row["terminated_at"]) - datetime.fromisoformat(row["started_at"])).total_seconds()
    assert totals["hours"] * 3600 == pytest.approx(held, abs=0.01)  # closed at stop, to the second
    assert totals["allocated"]["cpu_core_hours"] * 3600 == pytest.approx(held, abs=0.01)  # 1 core the whole time
    assert totals["allocated"]["mem_gib_hours"] == pytest.approx(held / 3600 / 2, abs=1e-6)  # 512 MiB
    assert 0 < totals["used"]["mem_avg_bytes"] <= totals["used"]["mem_peak_bytes"] <= 512 * 2**20
    assert totals["used"]["cpu_seconds"] >= after  # the closing sample took the last figures


def test_mock_gpu_hours_add_up_across_a_hub_restart(hub):
    admin = admin_token(hub)
    r = hub_api(hub, admin, "POST", server_path("demo", "gpu"),
                json={"resources": {"cpu": 1, "mem": "512m", "cuda.device": 1}})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, admin, "demo", "gpu")
    time.sleep(5)
    hub.stop(keep_sessions=True)  # the hub and its service go; the session lives on, unsampled
    time.sleep(8)
    hub.start()
    admin = admin_token(hub)
    wait_ready(hub, admin, "demo", "gpu")
    time.sleep(5)
    stop_server(hub, admin, "demo", "gpu")
    got = session_usage(hub, admin, "gpu")
    row = got["session"]
    r = service_api(hub, admin, "GET", "usage?by=user&user=demo&period=1d&bucket=hour")
    hours = {i["bucket"]: i for i in r.json()["items"]}
    held = (datetime.fromisoformat(row["terminated_at"]) - datetime.fromisoformat(row["started_at"])).total_seconds()
    # only this session held a GPU: its GPU-hours are its lifetime, the restart's pause included, once
    gpu = sum(i["allocated"]["gpu_hours"] for i in hours.values())
    assert gpu * 3600 == pytest.approx(held, abs=0.01)
    assert held > 18  # it did live through the restart
    busy = sum(i["used"]["gpu_hours"] for i in hours.values())
    assert busy == pytest.approx(gpu / 2, abs=2e-6)  # the mock device reports 50 %
    r = service_api(hub, admin, "GET", "usage/plot.svg?by=user&period=1d&bucket=hour")
    assert r.status_code == 200 and "demo" in r.text
