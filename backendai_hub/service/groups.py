"""REST resource: groups (projects) within a domain."""

from __future__ import annotations

from .. import tenancy as T
from ..resources import REGISTRY
from .rules import check_group, group_visible
from .base import APIHandler
from .routes import resource_routes


class GroupsHandler(APIHandler):
    async def get(self):
        p, domain = self.principal, self.query("domain")
        self.write_page(await self.run(lambda s: [
            T.groups.to_dict(g) for g in T.groups.list_(s, domain) if group_visible(p, g.domain.name, g.name)]))

    async def post(self):
        data = self.body()
        domain = data.get("domain", self.principal.domain)
        check_group(self.principal, "create", domain if isinstance(domain, str) else "", None)
        data = {**data, "domain": domain}

        def work(s):
            check_group(self.principal, "create", domain, None, changes=data,
                        allowed_policies=self.allowed_policies(s, domain, data))
            return T.groups.to_dict(T.groups.create(s, data))

        self.write_json(await self.run(work), 201)


class GroupHandler(APIHandler):
    async def get(self, domain, name):
        check_group(self.principal, "read", domain, name)
        self.write_json(await self.run(lambda s: T.groups.to_dict(T.groups.get(s, domain, name))))

    async def patch(self, domain, name):
        data = self.body()
        check_group(self.principal, "update", domain, name)

        def work(s):
            check_group(self.principal, "update", domain, name, changes=data,
                        allowed_policies=self.allowed_policies(s, domain, data))
            return T.groups.to_dict(T.groups.update(s, domain, name, data))

        self.write_json(await self.run(work))

    async def delete(self, domain, name):
        check_group(self.principal, "delete", domain, name)
        await self.run(lambda s: T.groups.delete(s, domain, name))
        self.set_status(204)
        self.finish()


ROUTES = resource_routes(REGISTRY["group"], GroupsHandler, GroupHandler)
