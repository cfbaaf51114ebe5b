"""REST resource: users."""

from __future__ import annotations

from .. import tenancy as T
from ..resources import REGISTRY
from .rules import check_user, user_visible
from .base import APIHandler
from .routes import resource_routes


class UsersHandler(APIHandler):
    async def get(self):
        p, domain, group = self.principal, self.query("domain"), self.query("group")
        self.write_page(await self.run(lambda s: [
            T.users.to_dict(u) for u in T.users.list_(s, domain, group)
            if user_visible(p, u.username, u.domain.name)]))

    async def post(self):
        data = self.body()
        domain = data.get("domain", self.principal.domain)
        check_user(self.principal, "create", username=None, domain=domain if isinstance(domain, str) else "",
                   changes=data)
        data = {**data, "domain": domain}

        def work(s):
            check_user(self.principal, "create", username=None, domain=domain, changes=data,
                       allowed_policies=self.allowed_policies(s, domain, data))
            return T.users.to_dict(T.users.create(s, data))

        self.write_json(await self.run(work), 201)


class UserHandler(APIHandler):
    def _check(self, s, verb, name, changes=None):
        u = T.users.get(s, name)
        check_user(self.principal, verb, username=u.username, domain=u.domain.name, role=u.role.value,
                   changes=changes, allowed_policies=self.allowed_policies(s, u.domain.name, changes or {}))
        return u

    async def get(self, name):
        self.write_json(await self.run(lambda s: T.users.to_dict(self._check(s, "read", name))))

    async def patch(self, name):
        data = self.body()

        def work(s):
            u = self._check(s, "update", name, data)
            return T.users.to_dict(T.users.update(s, u.username, data))

        self.write_json(await self.run(work))

    async def delete(self, name):
        def work(s):
            u = self._check(s, "delete", name)
            T.users.delete(s, u.username)

        await self.run(work)
        self.set_status(204)
        self.finish()


ROUTES = resource_routes(REGISTRY["user"], UsersHandler, UserHandler)
