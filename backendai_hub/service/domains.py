"""REST resource: domains (tenants)."""

from __future__ import annotations

from .. import tenancy as T
from ..resources import REGISTRY
from .rules import check_domain, domain_visible
from .base import APIHandler
from .routes import resource_routes


class DomainsHandler(APIHandler):
    async def get(self):
        p = self.principal
        self.write_page(await self.run(lambda s: [
            T.domains.to_dict(d) for d in T.domains.list_(s) if domain_visible(p, d.name)]))

    async def post(self):
        data = self.body()
        check_domain(self.principal, "create", None)
        self.write_json(await self.run(lambda s: T.domains.to_dict(T.domains.create(s, data))), 201)


class DomainHandler(APIHandler):
    async def get(self, name):
        check_domain(self.principal, "read", name)
        self.write_json(await self.run(lambda s: T.domains.to_dict(T.domains.get(s, name))))

    async def patch(self, name):
        data = self.body()
        check_domain(self.principal, "update", name)
        self.write_json(await self.run(lambda s: T.domains.to_dict(T.domains.update(s, name, data))))

    async def delete(self, name):
        check_domain(self.principal, "delete", name)
        await self.run(lambda s: T.domains.delete(s, name))
        self.set_status(204)
        self.finish()


ROUTES = resource_routes(REGISTRY["domain"], DomainsHandler, DomainHandler)
