"""REST resource: sessions: list with filters and pages, show, stop (through the hub's API), ping."""

from __future__ import annotations

import asyncio
import logging

import docker

from .. import session_ops
from .. import session_query as Q
from ..errors import Unavailable
from ..errors import RemoteError
from ..resources import BOOL, NULLABLE_STR, SLOTS_OUT, STR, TIMESTAMP
from .base import APIHandler
from .routes import Op, Route
from .rules import check_session, session_scope

log = logging.getLogger("backendai_hub.service")
INT = {"type": "integer"}
HUB_TIMEOUT = 35.0  # the hub waits up to slow_stop_timeout (10 s) for the spawner before answering 202
PING_TIMEOUT = 15.0
FILTERS = ("user", "domain", "group", "status", "image", "accelerators", "older_than", "access_key")


class SessionBase(APIHandler):
    @property
    def scope(self) -> Q.Scope:
        return session_scope(self.principal)

    def session_row(self, s, ref: str):
        row = Q.get(s, self.scope, ref)
        check_session(self.principal, "read", owner=row.user.username, domain=row.group.domain.name, ref=ref)
        return row

    async def stop(self, ref: str) -> tuple[int, dict]:
        """Ask the hub to stop the session's server; (hub status, the session now)."""
        hub = self.settings.get("hub_api")
        if not hub:
            await self.run(lambda s: self.session_row(s, ref), readonly=True)  # one they cannot see: 404
            raise Unavailable("stopping a session needs the hub's API: this service runs without "
                              "JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN")
        sid, user, server = await self.run(lambda s: session_ops.mark_stopping(s, self.scope, ref, self.principal.username))
        loop = asyncio.get_running_loop()
        try:
            code = await asyncio.wait_for(loop.run_in_executor(
                None, session_ops.stop_server, hub[0], hub[1], user, server, HUB_TIMEOUT - 5), HUB_TIMEOUT)
        except (RemoteError, asyncio.TimeoutError) as e:
            await self.run(lambda s: session_ops.unmark(s, sid, self.principal.username))
            raise e if isinstance(e, RemoteError) else RemoteError("the hub did not answer in time") from None
        log.info("session %s (%s/%s) stopped by %s: hub answered %s", sid, user, server,
                      self.principal.username, code)
        return code, await self.run(lambda s: session_ops.settle_stop(s, sid, code), readonly=code != 404)

    async def ping(self, ref: str) -> dict:
        row = await self.run(lambda s: Q.to_dict(self.session_row(s, ref)))
        client = self.settings.get("docker_client", docker.from_env)
        loop = asyncio.get_running_loop()
        got = await asyncio.wait_for(loop.run_in_executor(None, session_ops.ping, row["container_id"], client),
                                     PING_TIMEOUT)
        return {"id": row["id"], "name": row["name"], "user": row["user"], "status": row["status"], **got}


class SessionsHandler(SessionBase):
    async def get(self):
        """Sessions the caller sees (admins: their scope; users: their own), newest first; live ones
        unless ``status`` says (queued, starting, running, terminated, live, or several: running,terminated)."""
        raw = {k: self.query(k) for k in FILTERS}
        raw["status"] = raw["status"] or "live"
        filters = Q.parse_filters(raw)
        limit, offset = self.page()

        def work(s):
            rows, total = Q.find(s, self.scope, filters, limit, offset)
            return {"items": [Q.to_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}

        self.write_json(await self.run(work))


class SessionHandler(SessionBase):
    audit_ops = {"DELETE": "stop"}

    async def get(self, session_id):
        self.write_json(await self.run(lambda s: Q.to_dict(self.session_row(s, session_id))))

    async def delete(self, session_id):
        """Stop the session: the hub stops its server (the spawner frees its slots). 200 when it has
        stopped, 202 while the hub is still stopping it; either way the session as it is now."""
        code, row = await self.stop(session_id)
        self.write_json(row, 202 if code == 202 else 200)


class SessionPingHandler(SessionBase):
    async def get(self, session_id):
        """Whether the session's container is running (the Docker engine's view) and its server answers."""
        self.write_json(await self.ping(session_id))


SESSION = {"id": INT, "name": STR, "session_uuid": STR, "user": STR, "server_name": STR, "access_key": STR,
           "group": STR, "domain": STR, "image": STR, "app": STR, "resources": SLOTS_OUT, "accelerators": BOOL,
           "status": {"type": "string", "enum": ["queued", "starting", "running", "terminated"]},
           "status_info": STR, "container_id": NULLABLE_STR,
           "created_at": TIMESTAMP, "started_at": TIMESTAMP, "terminated_at": TIMESTAMP}
NULLABLE_INT = {"type": "integer", "nullable": True}
SCHEMAS = {
    "Session": SESSION,
    "SessionPing": {
        "id": INT, "name": STR, "user": STR, "status": STR, "alive": BOOL,
        "container": {"type": "object", "properties": {
            "id": NULLABLE_STR, "state": STR, "running": BOOL, "started_at": NULLABLE_STR,
            "exit_code": NULLABLE_INT}},
        "server": {"type": "object", "properties": {
            "url": NULLABLE_STR, "answering": BOOL, "status": NULLABLE_INT, "version": NULLABLE_STR,
            "error": NULLABLE_STR}},
    },
}
_QUERY = (("user", STR), ("domain", STR), ("group", STR),
          ("status", {"type": "string", "description": "queued, starting, running, terminated, live (default) "
                                                       "or all; several separated by commas"}),
          ("image", STR), ("accelerators", {"type": "boolean"}),
          ("older_than", {"type": "string", "description": "created before: a duration back from now (30m, 2h, "
                                                           "7d, 1w) or an ISO 8601 date or date-time"}),
          ("access_key", STR))
ROUTES = [
    Route(r"sessions", SessionsHandler, ops={"get": Op(page="Session", query=_QUERY)}),
    Route(r"sessions/([^/]+)", SessionHandler, params=("session_id",), ops={
        "get": Op(answer="Session", summary="A session, by its id or UUID"),
        "delete": Op(answer="Session", summary="Stop a session (its server, through the hub)",
                     errors={"409": "already terminated", "502": "the hub refused or is unreachable",
                             "503": "the service has no hub API to ask"},
                     responses={"202": {"description": "the hub is still stopping it", "content": {
                         "application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}}})}),
    Route(r"sessions/([^/]+)/ping", SessionPingHandler, params=("session_id",), ops={
        "get": Op(answer="SessionPing", errors={"502": "the Docker engine did not answer"})}),
]
