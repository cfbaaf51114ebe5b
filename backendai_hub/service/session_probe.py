"""What the culler reads from a running session (kernels busy, terminals' activity, accelerator
utilisation) and how it tells the session that a stop is planned (the labextension's server part).

The single-user server is reached at the container's address on its network, as the hub reaches it,
not through the hub's proxy: the proxy counts every request it carries as the server's activity, so a
culler reading through it would keep every session alive. Reads carry ``no_track_activity`` so that
the server does not count them either.

Each request carries **that server's own token** (the spawner's ``JUPYTERHUB_API_TOKEN`` from the
container's environment; the hub scopes it to that one server), never the service's: the server runs
code its user controls, so whatever token reaches it must give nothing beyond that session. A container
without its token is not read (and not warned).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..accelerators import Accelerators
from ..idleness import Activity, session_util
from ..session_ops import container_env, server_url

log = logging.getLogger("backendai_hub.culler")

WARNING_PATH = "backendai-hub/cull"  # under the server's base URL (labextension's handlers)
READ_TIMEOUT = 10.0


def _parse(value: Any, now: datetime | None = None) -> datetime | None:
    """A time the session's server reports: aware, and never later than ``now`` (the server is its
    user's: a time without a zone or in the future is no activity, not a way to stay alive for ever)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    if t.tzinfo is None or t.utcoffset() is None:
        return None
    now = now or datetime.now(timezone.utc)
    return min(t, now)


def activity_from(hub_last: datetime | None, kernels: Any, terminals: Any,
                  accelerator: datetime | None = None, now: datetime | None = None) -> Activity:
    """An :class:`Activity` from the server's /api/kernels and /api/terminals answers (lists of
    models; anything else counts as unread). Pure."""
    kernels = kernels if isinstance(kernels, list) else []
    terminals = terminals if isinstance(terminals, list) else []
    k = [m for m in kernels if isinstance(m, dict)]
    t = [m for m in terminals if isinstance(m, dict)]
    return Activity(
        hub=hub_last,
        kernel_busy=any(m.get("execution_state") == "busy" for m in k),
        kernel=max(filter(None, (_parse(m.get("last_activity"), now) for m in k)), default=None),
        terminal=max(filter(None, (_parse(m.get("last_activity"), now) for m in t)), default=None),
        accelerator=accelerator)


class SessionProbe:
    """Reads one pass's figures of sessions and pushes warnings; one per culler."""

    def __init__(self, docker_client: Callable[[], Any] | None = None,
                 accelerators: Accelerators | None = None, client: AsyncHTTPClient | None = None):
        self.docker, self.accelerators = docker_client, accelerators
        self.client = client or AsyncHTTPClient()
        self._tokens: dict[str, str] = {}  # base URL -> that server's own token

    def base_url(self, container_id: str | None) -> str | None:
        """The server's base URL (ending in ``/``) at the container's address, None when it cannot be
        read or the container holds no token of its own; blocking."""
        if not container_id or self.docker is None:
            return None
        try:
            attrs = self.docker().api.inspect_container(container_id)
        except Exception as e:  # noqa: BLE001 - gone, or the engine is down: nothing to read this pass
            log.debug("cannot inspect %s: %s", container_id[:12], e)
            return None
        api, token = server_url(attrs), container_env(attrs).get("JUPYTERHUB_API_TOKEN")
        if not api or not token:
            return None
        base = api[: -len("api")]
        self._tokens[base] = token
        return base

    async def _request(self, method: str, base: str, path: str, body: Any = None) -> Any:
        token = self._tokens.get(base)
        if not token:  # never another credential than the server's own
            raise OSError(f"{base}: no token of its own")
        url = f"{base}{path}"
        req = HTTPRequest(url, method=method, headers={"Authorization": f"token {token}",
                                                       "Content-Type": "application/json"},
                          body=json.dumps(body) if body is not None else None, request_timeout=READ_TIMEOUT)
        resp = await self.client.fetch(req, raise_error=False)
        if resp.code >= 400 or resp.code == 599:
            raise OSError(f"{method} {url}: HTTP {resp.code}")
        return json.loads(resp.body) if resp.body else None

    async def server_state(self, base: str | None) -> tuple[Any, Any]:
        """(kernels, terminals) as the server lists them; None for what could not be read."""
        if not base:
            return None, None
        out = []
        for what in ("kernels", "terminals"):
            try:
                out.append(await self._request("GET", base, f"api/{what}?no_track_activity=1"))
            except (OSError, ValueError) as e:
                log.debug("session %s: cannot read %s: %s", base, what, e)
                out.append(None)
        return out[0], out[1]

    def utilisation(self, allocation: Mapping | None) -> float | None:
        """The session's accelerator utilisation now (its busiest device), None when it holds none or
        no plugin answers; blocking (NVML)."""
        devices = (allocation or {}).get("devices") or {}
        if not devices or self.accelerators is None:
            return None
        figures: list[float] = []
        for slot, per in devices.items():
            plugin = self.accelerators.owner(slot)
            if plugin is None:
                continue
            try:
                figures += [s.util_percent for s in plugin.live_stats(list(per)).values()]
            except Exception as e:  # noqa: BLE001 - a driver error is no activity, and not a failed pass
                log.warning("accelerator figures of %s unavailable: %s", slot, e)
        return session_util(figures) if figures else None

    async def warn(self, base: str | None, stop_at: datetime | None, reason: str | None) -> bool:
        """Tell the session a stop is planned at ``stop_at`` because ``reason`` (None: no longer)."""
        if not base:
            return False
        body = {"stop_at": stop_at.isoformat() if stop_at else None, "reason": reason}
        try:
            await self._request("PUT", base, WARNING_PATH, body)
            return True
        except (OSError, ValueError) as e:
            log.warning("could not warn session %s of its stop: %s", base, e)
            return False


async def in_executor(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
