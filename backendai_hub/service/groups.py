"""REST resource: groups (projects) within a domain."""

from __future__ import annotations

from .. import tenancy as T
from .access import check_group, group_visible
from .base import APIHandler


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
        self.write_json(await self.run(lambda s: T.groups.to_dict(T.groups.create(s, data))), 201)


class GroupHandler(APIHandler):
    async def get(self, domain, name):
        check_group(self.principal, "read", domain, name)
        self.write_json(await self.run(lambda s: T.groups.to_dict(T.groups.get(s, domain, name))))

    async def patch(self, domain, name):
        data = self.body()
        check_group(self.principal, "update", domain, name)
        self.write_json(await self.run(lambda s: T.groups.to_dict(T.groups.update(s, domain, name, data))))

    async def delete(self, domain, name):
        check_group(self.principal, "delete", domain, name)
        await self.run(lambda s: T.groups.delete(s, domain, name))
        self.set_status(204)
        self.finish()


ROUTES = [
    (r"groups", GroupsHandler),
    (r"groups/([^/]+)/([^/]+)", GroupHandler),
]
