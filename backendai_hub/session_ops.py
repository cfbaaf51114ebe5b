"""Operating a running session from outside the hub: ask the hub to stop it, see whether it is alive.

Blocking (the Docker SDK, urllib): the service runs these on an executor with a timeout, the CLI
directly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import docker
from docker.errors import DockerException, NotFound as DockerNotFound

from . import session_query
from .admission import release
from .errors import Conflict, RemoteError
from .models import KernelSession, SessionStatus

# no proxy from the environment: the hub and the session networks are reached directly
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PROBE_TIMEOUT = 5.0


def server_path(user: str, server: str) -> str:
    """The hub API path of a user's default or named server."""
    return (f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}" if server
            else f"/users/{quote(user, safe='')}/server")


def stop_server(api_url: str, token: str, user: str, server: str, timeout: float = 30) -> int:
    """Ask the hub (``api_url``: its ``/hub/api``) to stop a server: 202 (stopping), 204 (stopped) or
    404 (the hub has no such server); anything else raises RemoteError."""
    req = urllib.request.Request(api_url.rstrip("/") + server_path(user, server), method="DELETE",
                                 headers={"Authorization": f"token {token}"})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:  # noqa: S310 - the hub's http(s) API URL
            return resp.status
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return 404
        raise RemoteError(f"the hub refused to stop {user}/{server}: HTTP {e.code} "
                          f"{e.read()[:200].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as e:
        raise RemoteError(f"cannot reach the hub's API at {api_url}: {getattr(e, 'reason', e)}") from None


def container_env(attrs: dict) -> dict[str, str]:
    return dict(e.split("=", 1) for e in (attrs.get("Config") or {}).get("Env") or [] if "=" in e)


def server_url(attrs: dict) -> str | None:
    """The single-user server's unauthenticated ``/api`` URL at the container's address on its network, as
    the hub reaches it (port from JUPYTERHUB_SERVICE_URL, path from JUPYTERHUB_SERVICE_PREFIX)."""
    env = container_env(attrs)
    networks = ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).values()
    address = next((n.get("IPAddress") for n in networks if n.get("IPAddress")), None)
    if not address:
        return None
    port = urlsplit(env.get("JUPYTERHUB_SERVICE_URL", "")).port or 8888
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return f"http://{address}:{port}{prefix if prefix.endswith('/') else prefix + '/'}api"


def probe(url: str, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """GET ``url`` (a Jupyter server's ``/api``): whether it answers, its status and version."""
    try:
        with _OPENER.open(urllib.request.Request(url), timeout=timeout) as resp:  # noqa: S310 - http
            body = resp.read(4096)
            status = resp.status
    except urllib.error.HTTPError as e:
        return {"url": url, "answering": True, "status": e.code, "version": None, "error": None}
    except (urllib.error.URLError, OSError) as e:
        return {"url": url, "answering": False, "status": None, "version": None,
                "error": str(getattr(e, "reason", e))}
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        version = None
    return {"url": url, "answering": 200 <= status < 300, "status": status, "version": version, "error": None}


def ping(container_id: str | None, client: Callable[[], Any] = docker.from_env,
         timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """Is the session's container alive (the engine's view, by its id), and is its server answering?"""
    out: dict[str, Any] = {"alive": False, "container": {"id": container_id, "state": "none", "running": False,
                                                         "started_at": None, "exit_code": None},
                           "server": {"url": None, "answering": False, "status": None, "version": None,
                                      "error": "no container"}}
    if not container_id:
        return out
    try:
        attrs = client().api.inspect_container(container_id)
    except DockerNotFound:
        out["container"]["state"] = "missing"
        return out
    except DockerException as e:
        raise RemoteError(f"cannot ask the Docker engine about container {container_id[:12]}: {e}") from None
    state = attrs.get("State") or {}
    out["container"].update(state=state.get("Status", "unknown"), running=bool(state.get("Running")),
                            started_at=state.get("StartedAt"), exit_code=state.get("ExitCode"))
    if not state.get("Running"):
        out["server"]["error"] = "container not running"
        return out
    url = server_url(attrs)
    if url is None:
        out["server"]["error"] = "container has no address on a network"
        return out
    out["server"] = probe(url, timeout)
    out["alive"] = out["server"]["answering"]
    return out


# -- stopping: the row says who stopped it (the spawner's release keeps the reason) ------------------

def mark_stopping(s, scope: session_query.Scope, ref: str, actor: str) -> tuple[int, str, str]:
    """Mark a live session as being stopped by ``actor`` (the spawner's release keeps the reason);
    (id, user, server) of the server to stop. 409 when it already ended."""
    row = session_query.get(s, scope, ref)
    if row.status == SessionStatus.terminated:
        name = session_query.session_name(row.server_name)
        raise Conflict(f"session {row.id} ({row.user.username}/{name}) is already terminated")
    if not (row.status_info or "").startswith("stopping: "):
        row.status_info = f"stopping: stopped by {actor}"
    return row.id, row.user.username, row.server_name


def unmark(s, session_id: int, actor: str) -> None:
    row = s.get(KernelSession, session_id)
    if row is not None and row.status_info == f"stopping: stopped by {actor}":
        row.status_info = ""


def settle_stop(s, session_id: int, hub_status: int) -> dict:
    """After the hub answered: a server the hub does not know is released here (its row was stale)."""
    if hub_status == 404:
        release(s, session_id, "stopped: the hub had no such server")
    return session_query.to_dict(s.get(KernelSession, session_id))
