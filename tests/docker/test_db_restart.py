"""The real hub and its REST service on a PostgreSQL of their own that stops and comes back under them:
a spawn and an API call fail with a clear 503 while it is down, and work again once it is back, with
no restart of the hub or the service."""

import pytest

from tests.hubproc import HubProcess, hub_api, server_path, service_api, stop_server, wait_ready
from tests.pgcluster import private_postgres

pytestmark = [pytest.mark.docker, pytest.mark.postgres]

SMALL = {"resources": {"cpu": 1, "mem": "512m"}}

private_pg = private_postgres()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, docker_available, private_pg):
    """The demo hub with backendai-hub's database on the private cluster (the hub's own stays SQLite)."""
    private_pg.sql('CREATE DATABASE "hub"')
    h = HubProcess(tmp_path_factory.mktemp("pg-hub"))
    h.env["BACKENDAI_HUB_DB_URL"] = private_pg.url("hub")
    h.start()
    yield h
    h.stop()


def spawn(hub, token):
    return hub_api(hub, token, "POST", server_path("demo"), json=SMALL)


def test_spawns_and_api_calls_get_a_clear_503_while_postgres_is_down_and_work_once_it_is_back(hub, admin, private_pg):
    assert spawn(hub, admin).status_code in (201, 202)
    wait_ready(hub, admin)
    stop_server(hub, admin)
    private_pg.stop("fast")
    try:
        r = spawn(hub, admin)
        assert r.status_code == 503, (r.status_code, r.text[:300])
        assert r.json()["message"].startswith("the database is unavailable"), r.text[:300]
        assert not hub_api(hub, admin, "GET", "users/demo").json()["servers"]  # nothing half started
        r = service_api(hub, admin, "GET", "domains")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", (r.status_code, r.text[:300])
        assert r.json()["error"] == "ServiceUnavailable" and r.json()["unavailable"] == "database"
    finally:
        if not private_pg.running:
            private_pg.start()
    # the same hub and service processes: their pools reconnect by themselves
    r = service_api(hub, admin, "GET", "domains")
    assert r.status_code == 200 and "default" in {d["name"] for d in r.json()["items"]}, r.text[:300]
    assert spawn(hub, admin).status_code in (201, 202)
    wait_ready(hub, admin)
    stop_server(hub, admin)
