"""REST resource: sessions (read-only here; servers start and stop through the hub's API)."""

from __future__ import annotations

from sqlalchemy import select

from .. import sessions as S
from ..errors import NotFound
from ..models import KernelSession
from .access import user_visible
from .base import APIHandler


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
            row = s.get(KernelSession, int(session_id)) if session_id.isdigit() else None
            if row is None or not _visible(self.principal, row):
                raise NotFound(f"unknown session {session_id!r}")
            return S.session_to_dict(row)

        self.write_json(await self.run(work))


class ImagesHandler(APIHandler):
    async def get(self):
        catalog = self.settings["image_catalog"]
        images = await self._executor(catalog.images)
        self.write_page([i.to_dict() for i in images])

    async def _executor(self, fn):
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, fn)


ROUTES = [
    (r"sessions", SessionsHandler),
    (r"sessions/([^/]+)", SessionHandler),
    (r"images", ImagesHandler),
]
