"""REST resource: resource policies (keypair, user, group)."""

from __future__ import annotations

from .. import tenancy as T
from ..resources import REGISTRY
from .rules import check_policy
from .base import APIHandler
from .routes import resource_routes


class PoliciesHandler(APIHandler):
    async def get(self):
        check_policy(self.principal, "read")
        kind = self.query("kind")
        self.write_page(await self.run(lambda s: [T.policies.to_dict(p) for p in T.policies.list_(s, kind)]))

    async def post(self):
        data = self.body()
        check_policy(self.principal, "create")
        kind = data.pop("kind", "keypair")
        self.write_json(await self.run(lambda s: T.policies.to_dict(T.policies.create(s, kind, data))), 201)


class PolicyHandler(APIHandler):
    async def get(self, kind, name):
        check_policy(self.principal, "read")
        self.write_json(await self.run(lambda s: T.policies.to_dict(T.policies.get(s, kind, name))))

    async def patch(self, kind, name):
        data = self.body()
        check_policy(self.principal, "update")
        self.write_json(await self.run(lambda s: T.policies.to_dict(T.policies.update(s, kind, name, data))))

    async def delete(self, kind, name):
        check_policy(self.principal, "delete")
        await self.run(lambda s: T.policies.delete(s, kind, name))
        self.set_status(204)
        self.finish()


ROUTES = resource_routes(REGISTRY["policy"], PoliciesHandler, PolicyHandler)
