"""REST resource: keypairs (the secret key is returned once, at creation)."""

from __future__ import annotations

from .. import tenancy as T
from ..resources import REGISTRY
from .rules import check_keypair, user_visible
from .base import APIHandler
from .routes import resource_routes


class KeyPairsHandler(APIHandler):
    async def get(self):
        p, user = self.principal, self.query("user")
        self.write_page(await self.run(lambda s: [
            T.keypairs.to_dict(k) for k in T.keypairs.list_(s, user)
            if user_visible(p, k.user.username, k.user.domain.name)]))

    async def post(self):
        data = self.body()
        data.setdefault("user", self.principal.username)
        box = self.db.secrets

        def work(s):
            owner = T.users.get(s, data["user"])
            check_keypair(self.principal, "create", owner=owner.username, owner_domain=owner.domain.name,
                          owner_role=owner.role.value, changes=data,
                          allowed_policies=self.allowed_policies(s, owner.domain.name, data))
            main = owner.main_keypair
            if "resource_policy" not in data and not self.principal.is_superadmin and main is not None:
                # a key issued without a policy by anyone but a superadmin gets the owner's main key's:
                # a user cannot leave the policy an admin assigned by issuing themselves a fresh key
                data["resource_policy"] = main.resource_policy.name
            kp, secret = T.keypairs.issue(s, box, data)
            return {**T.keypairs.to_dict(kp), "secret_key": secret}

        self.write_json(await self.run(work), 201)


class KeyPairHandler(APIHandler):
    def _check(self, s, verb, access_key, changes=None):
        kp = T.keypairs.get(s, access_key)
        check_keypair(self.principal, verb, owner=kp.user.username, owner_domain=kp.user.domain.name,
                      owner_role=kp.user.role.value, changes=changes, access_key=access_key,
                      allowed_policies=self.allowed_policies(s, kp.user.domain.name, changes or {}))
        return kp

    async def get(self, access_key):
        self.write_json(await self.run(lambda s: T.keypairs.to_dict(self._check(s, "read", access_key))))

    async def patch(self, access_key):
        data = self.body()

        def work(s):
            self._check(s, "update", access_key, data)
            return T.keypairs.to_dict(T.keypairs.update(s, access_key, data))

        self.write_json(await self.run(work))

    async def delete(self, access_key):
        def work(s):
            self._check(s, "delete", access_key)
            T.keypairs.delete(s, access_key)

        await self.run(work)
        self.set_status(204)
        self.finish()


ROUTES = resource_routes(REGISTRY["keypair"], KeyPairsHandler, KeyPairHandler)
