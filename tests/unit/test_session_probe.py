"""The culler's probe talks to a session's server with that server's own token, never the service's:
the server runs code its user controls, so a token that reaches it must be worth that session only."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backendai_hub.service import culler, server
from backendai_hub.service.session_probe import SessionProbe, _parse

NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


class Response:
    def __init__(self, body):
        self.code, self.body = 200, json.dumps(body).encode()


class Client:
    """Records each request the probe makes (what a session's server would receive)."""

    def __init__(self):
        self.requests = []

    async def fetch(self, req, raise_error=False):
        self.requests.append(req)
        return Response([])


class Engine:
    def __init__(self, env):
        self.env = env
        self.api = self

    def inspect_container(self, _id):
        return {"Config": {"Env": self.env},
                "NetworkSettings": {"Networks": {"sessions": {"IPAddress": "172.30.0.7"}}}}


SERVER_ENV = ["JUPYTERHUB_API_TOKEN=the-servers-own", "JUPYTERHUB_SERVICE_PREFIX=/user/bob/",
              "JUPYTERHUB_SERVICE_URL=http://0.0.0.0:8888/user/bob/"]


async def test_reads_and_warnings_carry_the_servers_own_token(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the-services-token")  # the service's own, as in its process
    client = Client()
    probe = SessionProbe(lambda: Engine(SERVER_ENV), client=client)
    base = probe.base_url("c0ffee")
    assert base == "http://172.30.0.7:8888/user/bob/"
    await probe.server_state(base)
    assert await probe.warn(base, NOW, "idle")
    urls = [r.url for r in client.requests]
    assert urls == [f"{base}api/kernels?no_track_activity=1", f"{base}api/terminals?no_track_activity=1",
                    f"{base}backendai-hub/cull"]
    assert {r.headers["Authorization"] for r in client.requests} == {"token the-servers-own"}
    assert all("the-services-token" not in str(r.headers) for r in client.requests)


async def test_a_container_without_its_own_token_is_not_contacted():
    client = Client()
    probe = SessionProbe(lambda: Engine(SERVER_ENV[1:]), client=client)
    assert probe.base_url("c0ffee") is None
    assert await probe.server_state(None) == (None, None) and not await probe.warn(None, NOW, "idle")
    # nor with a base it never read a token for
    assert await probe.server_state("http://172.30.0.8:8888/user/eve/") == (None, None)
    assert client.requests == []


def test_the_services_hub_role_cannot_use_other_users_servers():
    scopes = server.hub_service_role()["scopes"]
    assert "access:servers" not in scopes and "access:servers" not in culler.SERVICE_SCOPES
    assert not any(s.startswith("access:servers") for s in scopes)


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-01T11:00:00Z", NOW - timedelta(hours=1)),
    ("2026-03-01T11:00:00", None),  # no zone: it would not even compare
    ("2100-01-01T00:00:00+00:00", NOW),  # the future: now at the latest
    ("9999-12-31T23:59:59Z", NOW),
    ("not a time", None), (12, None), ("", None),
])
def test_times_a_server_reports_are_aware_and_never_ahead(value, expected):
    assert _parse(value, NOW) == expected


_HANDLERS = Path(__file__).resolve().parents[2] / "labextension" / "backendai_hub_labextension" / "handlers.py"


def test_only_the_servers_own_token_may_plan_a_stop(monkeypatch):
    """The labextension's PUT: its own server's token (what the probe sends) and nothing else; the module is
    loaded with jupyter_server's two names stubbed (the hub's venv has no jupyter_server)."""
    for name in ("jupyter_server", "jupyter_server.base", "jupyter_server.base.handlers", "jupyter_server.utils"):
        monkeypatch.setitem(sys.modules, name, type(sys)(name))
    sys.modules["jupyter_server.base.handlers"].APIHandler = object
    sys.modules["jupyter_server.utils"].url_path_join = lambda *a: "/".join(a)
    pkg = type(sys)("backendai_hub_labextension")
    pkg.__path__ = [str(_HANDLERS.parent)]
    monkeypatch.setitem(sys.modules, "backendai_hub_labextension", pkg)
    spec = importlib.util.spec_from_file_location("backendai_hub_labextension.handlers", _HANDLERS)
    handlers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handlers)

    class Request:
        def __init__(self, auth):
            self.headers = {"Authorization": auth} if auth else {}

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "own")
    assert handlers._from_the_service(Request("token own")) and handlers._from_the_service(Request("Bearer own"))
    for auth in ("token users-own-api-token", "token admin", "token ", "own", None, "token owner"):
        assert not handlers._from_the_service(Request(auth)), auth
