"""Sampling running sessions: the Docker engine's stats of each container (its cgroup's counters)
plus the accelerator plugins' live figures, recorded through :mod:`.accounting`."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import docker.errors
from sqlalchemy import select

from ..db import Database
from ..errors import ServiceUnavailable
from ..models import KernelSession, SessionStatus
from . import accounting
from .accounting import Counters

log = logging.getLogger("backendai_hub.usage")
STATS_TIMEOUT = 10.0


def counters_from_stats(stats: Mapping[str, Any]) -> Counters | None:
    """A container's counters from the Engine API's stats (cgroup v1 or v2); None for a container
    that is not running (the engine answers zeros, not its last figures)."""
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    mem = stats.get("memory_stats") or {}
    if not cpu and not mem.get("usage"):
        return None
    detail = mem.get("stats") or {}
    # as `docker stats` shows it: without the page cache the kernel may drop at will
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0
    used = max(0, int(mem.get("usage") or 0) - int(inactive))
    peak = int(mem.get("max_usage") or 0)  # cgroup v1 only
    read = write = 0
    for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value") or 0)
        elif op == "write":
            write += int(entry.get("value") or 0)
    nets = (stats.get("networks") or {}).values()
    return Counters(cpu_seconds=int(cpu or 0) / 1e9, mem_bytes=used, mem_peak=max(peak, used),
                    disk_read=read, disk_write=write, net_rx=sum(int(n.get("rx_bytes") or 0) for n in nets),
                    net_tx=sum(int(n.get("tx_bytes") or 0) for n in nets))


def held_devices(allocation: Mapping[str, Any] | None) -> list[str]:
    """The device ids a session holds (``sessions.allocation["devices"]``: slot -> {id: amount})."""
    return sorted({dev for per in ((allocation or {}).get("devices") or {}).values() for dev in per})


def device_figures(accelerators, allocation: Mapping[str, Any] | None) -> tuple[float, int]:
    """(utilisation summed, memory in use summed) of the devices a session holds, each asked of the
    plugin that owns its slot (the accelerators registry)."""
    per_plugin: dict[int, tuple[Any, set[str]]] = {}
    for slot, per in ((allocation or {}).get("devices") or {}).items():
        plugin = accelerators.owner(slot) if accelerators is not None else None
        if plugin is not None:
            per_plugin.setdefault(id(plugin), (plugin, set()))[1].update(per)
    util, mem = 0.0, 0
    for plugin, ids in per_plugin.values():
        for st in plugin.live_stats(sorted(ids)).values():
            util += st.util_percent
            mem += st.mem_used
    return util, mem


def container_counters(client, container_id: str, accelerators=None, allocation=None) -> Counters | None:
    """Blocking: one container's counters now (one-shot stats), with its devices' figures."""
    try:
        stats = client.api.stats(container_id, stream=False, one_shot=True)
    except docker.errors.NotFound:
        return None
    except ValueError:  # an empty answer: the engine is removing the container (its session stopping)
        log.debug("usage: no stats for %s (being removed)", container_id[:12])
        return None
    c = counters_from_stats(stats)
    if c is None:
        return None
    util, mem = device_figures(accelerators, allocation)
    return Counters(**{**c.__dict__, "accel_util": util, "accel_mem": mem})


class Sampler:
    """Every ``interval`` seconds: one sample of every running session (the service runs it beside
    the culler). Blocking work (the engine, the plugins, the database) runs in the default executor."""

    def __init__(self, db: Database, client_factory: Callable[[], Any], accelerators=None, interval: float = 60,
                 concurrency: int = 10):
        self.db, self.client_factory, self.accelerators, self.interval = db, client_factory, accelerators, interval
        # the engine answers a stats request at its collector's next tick (about a second, one-shot or
        # not): asked one after another, 100 sessions would take 100 s; asked together, about one
        self.concurrency = max(1, concurrency)
        self._client = None
        self.last_pass_seconds = 0.0

    @property
    def client(self):
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def running(self) -> list[tuple[int, str, dict]]:
        with self.db.session(readonly=True) as s:
            rows = s.execute(select(KernelSession.id, KernelSession.container_id, KernelSession.allocation).where(
                KernelSession.status == SessionStatus.running, KernelSession.container_id.is_not(None)))
            return [(sid, cid, alloc or {}) for sid, cid, alloc in rows]

    def sample(self, session_id: int, container_id: str, allocation: dict, at: datetime | None = None) -> bool:
        """Blocking: sample one session now; False when its container is gone or the sample is a repeat."""
        counters = container_counters(self.client, container_id, self.accelerators, allocation)
        if counters is None:
            return False
        at = at or datetime.now(timezone.utc)
        with self.db.session() as s:
            return accounting.record(s, session_id, at, counters)

    def run_once(self) -> int:
        """Blocking: sample every running session; returns how many samples were recorded. The engine
        is asked for every container at once (``concurrency`` at a time); the samples are written one
        by one, each at the time its figures were taken."""
        began, n = time.monotonic(), 0
        running = self.running()
        client = self.client  # made once, before the threads share it

        def figures(item):
            sid, cid, alloc = item
            try:
                counters = container_counters(client, cid, self.accelerators, alloc)
                return sid, datetime.now(timezone.utc), counters  # the figures are as of their answer
            except Exception:  # one container's trouble does not stop the others' samples
                log.exception("usage: sampling session %s failed", sid)
                return sid, None, None

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(running)))) as pool:
            got = list(pool.map(figures, running))
        for sid, at, counters in got:
            if counters is None:
                continue
            with self.db.session() as s:
                n += accounting.record(s, sid, at, counters)
        self.last_pass_seconds = time.monotonic() - began
        return n

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.run_once)
            except ServiceUnavailable as e:
                log.warning("usage sampling pass skipped: %s", e.message)
            except Exception:
                log.exception("usage sampling pass failed")
            await asyncio.sleep(self.interval)
