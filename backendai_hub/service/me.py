"""REST resource: me (the caller's own tenancy, role and reach)."""

from __future__ import annotations

from .. import tenancy as T
from ..policy import effective_limits, slots_to_json
from ..admission import levels_for
from .base import APIHandler
from .routes import Route


class MeHandler(APIHandler):
    async def get(self):
        p = self.principal

        def work(s):
            u = T.users.get(s, p.username)
            out = T.users.to_dict(u)
            out.update(role=p.role, authenticated_via=p.via, access_key=p.access_key,
                       administers=sorted(p.admin_domains) if not p.is_superadmin else ["*"])
            if p.access_key:
                kp = T.keypairs.get(s, p.access_key)
                levels = [levels_for(kp, g) for g in u.groups]
                out["keypair_policy"] = T.policies.to_dict(kp.resource_policy)
                out["effective_limits"] = {g.name: slots_to_json(effective_limits(lv))
                                           for g, lv in zip(u.groups, levels)}
            return out

        self.write_json(await self.run(work))


ROUTES = [Route(r"me", MeHandler)]
