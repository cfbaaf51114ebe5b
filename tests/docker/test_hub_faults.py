"""The hub SIGKILLed in the middle of a spawn, at each stage: after restart nothing is leaked (slots,
devices), no container is orphaned, and the user can spawn again. The service's periodic reconciler
converges the engine, the sessions table and the hub (real hub, proxy, service and engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hubproc import (admin_token, containers, hub_api, hub_fixture, kill_hub, live_sessions, run_cli,
                           server_path, stop_server, until, wait_ready)

pytestmark = pytest.mark.docker

GPU = {"resources": {"cpu": 1, "mem": "512m", "cuda.device": 1}}

hub = hub_fixture("hub-faults", BACKENDAI_HUB_CULL_INTERVAL="1", BACKENDAI_HUB_RECONCILE_GRACE="3",
                  BACKENDAI_HUB_EXTRA_CONFIG=str(Path(__file__).with_name("stalling_config.py")))


def rows(hub) -> list[tuple[str, str, str]]:
    import json

    out = run_cli(hub, "-o", "json", "audit", "list", "--entity-type", "session", "--limit", "200")
    assert out.returncode == 0, out.stderr
    return [(r["entity_id"], r["operation"], r["description"]) for r in json.loads(out.stdout)]


@pytest.mark.parametrize("stage", ["stall-admitted", "stall-started"])
def test_a_hub_killed_mid_spawn_leaks_nothing_and_the_user_spawns_again(hub, stage):
    admin = admin_token(hub)
    r = hub_api(hub, admin, "POST", server_path("demo", stage), json=GPU)
    assert r.status_code in (201, 202), r.text
    if stage == "stall-admitted":
        until("admitted", lambda: (stage, "starting") in live_sessions(hub))
        assert containers(hub, stage) == []
    else:
        until("container running", lambda: [c for c in containers(hub, stage) if c.status == "running"])
    kill_hub(hub)
    hub.start()
    admin = admin_token(hub)
    if stage == "stall-admitted":
        # the restarted hub does not know the spawn it was killed in: the reconciler releases it
        until("released", lambda: (stage, "starting") not in live_sessions(hub))
        assert any(op == "reconcile" and entity.startswith(f"demo/{stage}#") for entity, op, _ in rows(hub))
    else:
        # the container had started, and start() was waiting for its server to listen: the restarted hub
        # has no server for it (or, killed after start() returned, checks the one it finds, which never
        # answers), and the session is released, its container removed (a server that answers is
        # adopted: test_spawner's hub-restart test)
        until("stopped by the hub", lambda: not (hub_api(hub, admin, "GET", "users/demo").json()["servers"]
                                                 .get(stage) or {}).get("pending")
              and (stage, "running") not in live_sessions(hub), 90)
    until("no orphaned container", lambda: containers(hub, stage) == [])
    assert not [row for row in live_sessions(hub) if row[0] == stage]
    # no slot or device is leaked: demo's keypair allows one GPU (had the stalled one kept it, this is
    # refused), and with the admin's the two mock GPUs are both held again (had its device leaked, one
    # of them would queue)
    for user in ("demo", "admin"):
        assert hub_api(hub, admin, "POST", server_path(user, "again"), json=GPU).status_code in (201, 202)
    for user in ("demo", "admin"):
        wait_ready(hub, admin, user=user, name="again")
    for user in ("demo", "admin"):
        stop_server(hub, admin, user=user, name="again")
    assert live_sessions(hub) == []

