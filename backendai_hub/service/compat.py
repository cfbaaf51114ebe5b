"""Backend.AI-compatible routes the official client calls: version handshake, vfolder hosts."""

from __future__ import annotations

import json

from tornado import web

from .. import tenancy as T
from .base import APIHandler

# the API revision of backend.ai-client 23.9.x (ai.backend.client.config.API_VERSION)
API_VERSION = "v7.20230615"
MANAGER_VERSION = "23.09.0"


class VersionHandler(web.RequestHandler):
    """``GET <prefix>``: the unauthenticated handshake every client session starts with."""

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"version": API_VERSION, "manager": MANAGER_VERSION,
                                "backendai_hub": self.settings["version"]}))


class VFolderHostsHandler(APIHandler):
    """``GET <prefix>folders/_/hosts``: storage hosts the caller may use (domain, groups, keypair policy)."""

    async def get(self):
        p = self.principal

        def work(s):
            u = T.get_user(s, p.username)
            allowed = set(u.domain.allowed_vfolder_hosts or [])
            for g in u.groups:
                allowed |= set(g.allowed_vfolder_hosts or [])
            if p.access_key:
                allowed |= set(T.get_keypair(s, p.access_key).resource_policy.allowed_vfolder_hosts or [])
            else:
                for kp in u.keypairs:
                    allowed |= set(kp.resource_policy.allowed_vfolder_hosts or [])
            default = self.settings.get("default_vfolder_host", "local")
            return {"default": default if default in allowed else None, "allowed": sorted(allowed)}

        self.write_json(await self.run(work))


def routes(prefix: str) -> list:
    return [
        (prefix.rstrip("/") + "/?", VersionHandler),
        (f"{prefix}folders/_/hosts", VFolderHostsHandler),
    ]
