"""REST resource: domains (tenants)."""

from __future__ import annotations

from .. import tenancy as T
from .access import check_domain, domain_visible
from .base import APIHandler


class DomainsHandler(APIHandler):
    async def get(self):
        p = self.principal
        self.write_page(await self.run(lambda s: [
            T.domain_to_dict(d) for d in T.list_domains(s) if domain_visible(p, d.name)]))

    async def post(self):
        data = self.body()
        check_domain(self.principal, "create", None)
        self.write_json(await self.run(lambda s: T.domain_to_dict(T.create_domain(s, data))), 201)


class DomainHandler(APIHandler):
    async def get(self, name):
        check_domain(self.principal, "read", name)
        self.write_json(await self.run(lambda s: T.domain_to_dict(T.get_domain(s, name))))

    async def patch(self, name):
        data = self.body()
        check_domain(self.principal, "update", name)
        self.write_json(await self.run(lambda s: T.domain_to_dict(T.update_domain(s, name, data))))

    async def delete(self, name):
        check_domain(self.principal, "delete", name)
        await self.run(lambda s: T.delete_domain(s, name))
        self.set_status(204)
        self.finish()


ROUTES = [
    (r"domains", DomainsHandler),
    (r"domains/([^/]+)", DomainHandler),
]
