"""REST resource: agents (this host's hardware inventory and live figures), superadmins only."""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

from tornado import web

from ..accelerators import Accelerators
from ..accelerators.inventory import Inventory, agent_id, live_holders
from ..errors import NotFound
from .rules import check_agents
from ..resources import NULLABLE_STR, SLOTS_OUT, STR, TIMESTAMP
from .base import APIHandler
from .routes import Op, Route

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


SCHEMAS = {
    # GET agents, agents/{agent_id} (inventory) and agents/{agent_id}/live-stats
    # (id, collected_at, cpu, memory, accelerators: the same keys with live figures)
    "Agent": {"id": STR, "hostname": STR, "status": STR, "architecture": NULLABLE_STR, "os": STR,
              "cpu": {"type": "object", "description": "vendor, model, sockets, cores, threads, frequency_mhz, "
                                                       "max_frequency_mhz, flags; live: utilisation_percent, "
                                                       "load_average"},
              "memory": {"type": "object", "description": "total, available (bytes); live: used"},
              "numa_nodes": {"type": "array", "items": {"type": "object"}},
              "disks": {"type": "array", "items": {"type": "object"}},
              "accelerators": {"type": "array", "items": {"type": "object"},
                               "description": "per plugin: summary (driver/runtime versions, totals) and "
                                              "devices (model, memory, NUMA node, live utilisation, held_by)"},
              "capacity": SLOTS_OUT, "occupied": SLOTS_OUT,
              "failed_plugins": {"type": "object", "additionalProperties": STR},
              "collected_at": TIMESTAMP},
}
ROUTES = [
    Route(r"agents", AgentsHandler, ops={"get": Op(page="Agent")}),
    Route(r"agents/([^/]+)", AgentHandler, params=("agent_id",), ops={"get": Op(answer="Agent")}),
    Route(r"agents/([^/]+)/live-stats", AgentLiveStatsHandler, params=("agent_id",), ops={"get": Op(answer="Agent")}),
]
