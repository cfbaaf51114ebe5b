"""REST resource: sign-in locks from repeated failures (admins see and clear them)."""

from __future__ import annotations

from .. import throttle
from ..errors import NotFound
from .rules import check_login_locks
from .base import APIHandler
from .routes import Op, Route


class LocksHandler(APIHandler):
    async def get(self):
        check_login_locks(self.principal, "read")
        self.write_page(await self.run(throttle.active_locks))


class LockHandler(APIHandler):
    async def delete(self, key):
        check_login_locks(self.principal, "delete")
        if not await self.run(lambda s: throttle.clear(s, key)):
            raise NotFound(f"no sign-in lock {key!r}")
        self.set_status(204)
        self.finish()


SCHEMAS = {"LoginLock": {"key": {"type": "string"}, "locked_until": {"type": "string"},
                         "seconds_left": {"type": "integer"}}}
ROUTES = [
    Route(r"login-locks", LocksHandler, ops={"get": Op(page="LoginLock")}),
    Route(r"login-locks/([^/]+)", LockHandler, params=("key",),
          ops={"delete": Op(status="204", errors={"409": "still in use"})}),
]
