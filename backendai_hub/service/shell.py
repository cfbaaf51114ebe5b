"""REST resource: the caller's web shell: restart (the home is kept) and reset (the home is wiped, never the
vfolders), each one call; the hub stops and starts the ``shell`` server (the spawner wipes the home)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import quote

from sqlalchemy import select

from .. import session_ops
from .. import tenancy as T
from ..errors import Conflict, RemoteError, Unavailable
from ..models import LIVE_STATUSES, KernelSession
from ..resources import STR
from .base import APIHandler
from .routes import Op, Route

log = logging.getLogger("backendai_hub.service")
SHELL_SERVER = "shell"
STOP_WAIT = 60.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# what the service's role needs beyond the culler's: start a user's shell server again
SHELL_SCOPES = ["servers"]


def _hub(api_url: str, token: str, method: str, path: str, body: dict | None = None, timeout: float = 30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api_url.rstrip("/") + path, data=data, method=method,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:  # noqa: S310 - the hub's own API URL
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300].decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        raise RemoteError(f"cannot reach the hub's API at {api_url}: {getattr(e, 'reason', e)}") from None


def server_model(api_url: str, token: str, user: str, server: str) -> dict | None:
    """Blocking: the hub's model of a user's server (with its ``user_options``), None when it has none."""
    code, model = _hub(api_url, token, "GET", f"/users/{quote(user, safe='')}")
    if code != 200:
        raise RemoteError(f"the hub did not show user {user!r}: HTTP {code}")
    return (model.get("servers") or {}).get(server)


def restart_server(api_url: str, token: str, user: str, server: str, options: dict | None = None) -> int:
    """Blocking: stop a user's server, wait until the hub has forgotten it, start it again with ``options``
    (its user_options); the hub's status (201 started, 202 starting)."""
    session_ops.stop_server(api_url, token, user, server)
    deadline = time.monotonic() + STOP_WAIT
    while server_model(api_url, token, user, server) is not None:
        if time.monotonic() > deadline:
            raise RemoteError(f"the hub did not stop {user}/{server} in {STOP_WAIT:.0f} s")
        time.sleep(0.3)
    code, body = _hub(api_url, token, "POST", session_ops.server_path(user, server), options or {})
    if code not in (201, 202):
        raise RemoteError(f"the hub refused to start {user}/{server}: HTTP {code} {body}")
    return code


def restart_shell(api_url: str, token: str, user: str, reset: bool = False) -> int:
    """Blocking: restart the user's shell server (with ``reset_home``: the spawner wipes the home first)."""
    return restart_server(api_url, token, user, SHELL_SERVER, {"reset_home": True} if reset else {})


def live_shell(s, username: str) -> int:
    """The user's id, if they have a live shell session; 409 otherwise."""
    user = T.users.get(s, username)
    live = s.scalar(select(KernelSession.id).where(KernelSession.user_id == user.id,
                                                   KernelSession.server_name == SHELL_SERVER,
                                                   KernelSession.status.in_(LIVE_STATUSES)))
    if live is None:
        raise Conflict(f"you have no running shell session ({SHELL_SERVER!r}): start it from the home page",
                       field="shell")
    return user.id


class _ShellAction(APIHandler):
    audit_entity = "shell"
    wipe = False

    async def act(self):
        hub = self.settings.get("hub_api")
        user = self.principal.username
        await self.run(lambda s: live_shell(s, user), readonly=True)  # confirms the caller first
        if not hub:
            raise Unavailable("restarting a shell needs the hub's API: this service runs without "
                              "JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN")
        loop = asyncio.get_running_loop()
        code = await asyncio.wait_for(loop.run_in_executor(None, restart_shell, hub[0], hub[1], user, self.wipe),
                                      STOP_WAIT + 60)
        log.info("shell of %s %s by %s: hub answered %s", user, "reset" if self.wipe else "restarted",
                 self.principal.username, code)
        await self.run(lambda s: None, readonly=False)  # the audit row, once it is done
        self.write_json({"user": user, "server": SHELL_SERVER, "home": "wiped" if self.wipe else "kept",
                         "status": "running" if code == 201 else "starting"}, 202 if code == 202 else 200)


class ShellRestartHandler(_ShellAction):
    audit_ops = {"POST": "restart"}

    async def post(self):
        """Restart the caller's web shell (its home is kept)."""
        await self.act()


class ShellResetHandler(_ShellAction):
    audit_ops = {"POST": "reset"}
    wipe = True

    async def post(self):
        """Reset the caller's web shell: its home is wiped (the vfolders are not touched), then it starts afresh."""
        await self.act()


SHELL = {"user": STR, "server": STR, "home": {"type": "string", "enum": ["kept", "wiped"]},
         "status": {"type": "string", "enum": ["running", "starting"]}}
SCHEMAS = {"ShellAction": SHELL}
_ERRORS = {"409": "no running shell session", "502": "the hub refused or is unreachable", "503": "the service has no hub API to ask"}
ROUTES = [
    Route(r"shell/restart", ShellRestartHandler, ops={
        "post": Op(answer="ShellAction", summary="Restart your web shell (home kept)", body_required=False,
                   errors=_ERRORS)}),
    Route(r"shell/reset", ShellResetHandler, ops={
        "post": Op(answer="ShellAction", summary="Reset your web shell (home wiped, vfolders kept)",
                   body_required=False, errors=_ERRORS)}),
]
