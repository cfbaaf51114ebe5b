"""REST resource: agents (this host's hardware inventory and live figures), superadmins only."""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

from tornado import web

from ..accelerators import Accelerators
from ..accelerators.inventory import Inventory, agent_id, live_holders
from ..errors import NotFound
from .access import check_agents
from .base import APIHandler

T = TypeVar("T")

INVENTORY_TIMEOUT = 20.0  # seconds: /proc, /sys and NVML reads; a driver that hangs must not hang the API


class _AgentHandler(APIHandler):
    @property
    def inventory(self) -> Inventory:
        settings = self.application.settings
        if "inventory" not in settings:
            settings["inventory"] = Inventory(settings.get("accelerators") or Accelerators.instance())
        return settings["inventory"]

    async def blocking(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, fn), INVENTORY_TIMEOUT)
        except asyncio.TimeoutError:
            raise web.HTTPError(503, "the hardware inventory did not answer in time") from None

    def known(self, agent: str | None) -> None:
        if agent is not None and agent != agent_id():
            raise NotFound(f"unknown agent {agent!r}")

    async def agent(self) -> dict:
        holders = await self.run(live_holders)
        return await self.blocking(lambda: self.inventory.agent(holders))


class AgentsHandler(_AgentHandler):
    async def get(self):
        check_agents(self.principal)
        self.page()  # validate limit/offset before the work
        self.write_page([await self.agent()])


class AgentHandler(_AgentHandler):
    async def get(self, agent):
        check_agents(self.principal)
        self.known(agent)
        self.write_json(await self.agent())


class AgentLiveStatsHandler(_AgentHandler):
    async def get(self, agent):
        check_agents(self.principal)
        self.known(agent)
        self.write_json(await self.blocking(self.inventory.live_stats))


ROUTES = [
    (r"agents", AgentsHandler),
    (r"agents/([^/]+)", AgentHandler),
    (r"agents/([^/]+)/live-stats", AgentLiveStatsHandler),
]
