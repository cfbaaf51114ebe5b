"""REST resource: sessions (read-only here; servers start and stop through the hub's API)."""

from __future__ import annotations

from sqlalchemy import select

from .. import admission as S
from .. import validation as V
from ..errors import NotFound
from ..models import KernelSession
from .rules import user_visible
from ..resources import NULLABLE_STR, SLOTS_OUT, STR, TIMESTAMP
from .base import APIHandler
from .routes import Op, Route

INT = {"type": "integer"}


def _visible(p, row: KernelSession) -> bool:
    return user_visible(p, row.user.username, row.group.domain.name)


class SessionsHandler(APIHandler):
    async def get(self):
        p, status, user = self.principal, self.query("status"), self.query("user")

        def work(s):
            q = select(KernelSession).order_by(KernelSession.id)
            rows = S.live_sessions(s) if status is None else s.scalars(q).all()
            return [S.session_to_dict(r) for r in rows if _visible(p, r)
                    and (status is None or r.status.value == status) and (user is None or r.user.username == user)]

        self.write_page(await self.run(work))


class SessionHandler(APIHandler):
    async def get(self, session_id):
        def work(s):
            row = s.get(KernelSession, V.integer(session_id, "session_id")) if session_id.isdigit() else None
            if row is None or not _visible(self.principal, row):
                raise NotFound(f"unknown session {session_id!r}")
            return S.session_to_dict(row)

        self.write_json(await self.run(work))


SCHEMAS = {
    "Session": {"id": INT, "user": STR, "server_name": STR, "access_key": STR, "group": STR, "domain": STR,
                "image": STR, "app": STR, "resources": SLOTS_OUT,
                "status": {"type": "string", "enum": ["queued", "starting", "running", "terminated"]},
                "status_info": STR, "container_id": NULLABLE_STR,
                "created_at": TIMESTAMP, "started_at": TIMESTAMP, "terminated_at": TIMESTAMP},
}
ROUTES = [
    Route(r"sessions", SessionsHandler, ops={"get": Op(page="Session", query=("status", "user"))}),
    Route(r"sessions/([^/]+)", SessionHandler, params=("session_id",), ops={"get": Op(answer="Session")}),
]
