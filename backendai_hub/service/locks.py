"""REST resource: sign-in locks from repeated failures (admins see and clear them)."""

from __future__ import annotations

from .. import throttle
from ..errors import NotFound
from .access import check_login_locks
from .base import APIHandler


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


ROUTES = [
    (r"login-locks", LocksHandler),
    (r"login-locks/([^/]+)", LockHandler),
]
