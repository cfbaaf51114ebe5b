"""The accelerator registry: plugins discovered through entry points, their slots, totals and options."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Callable, Mapping

from traitlets import Float, List, Unicode
from traitlets.config import SingletonConfigurable

from .allocation import DeviceAllocator
from .base import AcceleratorPlugin, ContainerOptions, Device, amounts
from .inventory import numa_nodes

ENTRY_POINT_GROUP = "backendai_hub.accelerators"


class Accelerators(SingletonConfigurable):
    """Every accelerator plugin installed (entry points ``backendai_hub.accelerators``) and enabled.

    A plugin that fails to load, to start or to discover its devices is logged and skipped: the hub
    runs on without it. Configure a plugin with its own class name, e.g. ``c.MockPlugin.devices``.
    """

    plugins = List(
        Unicode(), default_value=None, allow_none=True,
        help="""Names of the accelerator plugins to load (entry point names, e.g. ['cuda', 'mock']).

        None (default) loads every installed plugin; a plugin without devices on this host (cuda
        without an NVIDIA driver, mock without configured devices) offers no slots.
        """,
    ).tag(config=True)

    discovery_timeout = Float(
        30, help="Seconds the hub waits for device discovery (NVML) before going on without devices.",
    ).tag(config=True)

    _loaded: list[AcceleratorPlugin] | None = None
    _slot_owner: dict[str, AcceleratorPlugin]
    _allocator: DeviceAllocator | None = None
    _failed: dict[str, str]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        self._slot_owner = {}
        self._failed = {}

    # -- discovery -------------------------------------------------------------------------------

    def entry_points(self) -> list[tuple[str, Callable[[], type]]]:
        """(name, loader) of every installed plugin, in name order."""
        return sorted(((ep.name, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)), key=lambda t: t[0])

    def discover(self) -> list[AcceleratorPlugin]:
        """Load the plugins and find their devices, once (blocking: call it from an executor)."""
        with self._lock:
            if self._loaded is not None:
                return list(self._loaded)
            loaded: list[AcceleratorPlugin] = []
            owner: dict[str, AcceleratorPlugin] = {}
            for name, load in self.entry_points():
                if self.plugins is not None and name not in self.plugins:
                    continue
                try:
                    plugin = load()(parent=self)
                    plugin.key = plugin.key or name
                    slots = plugin.slot_types()  # discovers (and caches) the devices
                except Exception as e:
                    self._failed[name] = f"{type(e).__name__}: {e}"
                    self.log.exception("Accelerator plugin %r failed and is skipped: %s", name, self._failed[name])
                    continue
                taken = sorted(s for s in slots if s in owner)
                if taken:
                    self._failed[name] = f"slot {taken[0]!r} is already offered by plugin {owner[taken[0]].key!r}"
                    self.log.error("Accelerator plugin %r is skipped: %s", name, self._failed[name])
                    continue
                for slot in slots:
                    owner[slot] = plugin
                loaded.append(plugin)
                if slots:
                    self.log.info("Accelerator plugin %r offers %s", name,
                                  ", ".join(f"{s}={self._total(plugin, s)}" for s in sorted(slots)))
            self._slot_owner, self._loaded = owner, loaded
            return list(loaded)

    async def ready(self) -> None:
        """Discover on an executor thread (bounded by ``discovery_timeout``); a no-op once done."""
        if self._loaded is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, self.discover), self.discovery_timeout)
        except asyncio.TimeoutError:
            self.log.error("Accelerator discovery took more than %s s; going on without accelerators",
                           self.discovery_timeout)
            with self._lock:
                if self._loaded is None:
                    self._slot_owner, self._loaded = {}, []

    @staticmethod
    def _total(plugin: AcceleratorPlugin, slot: str) -> str:
        total = sum((d.capacity for d in plugin.list_devices() if d.slot == slot), Decimal(0))
        return format(total.normalize(), "f")

    @property
    def failed(self) -> dict[str, str]:
        """Plugins skipped at discovery, with why."""
        self.discover()
        return dict(self._failed)

    # -- what the spawner asks -------------------------------------------------------------------

    def active(self) -> list[AcceleratorPlugin]:
        return self.discover()

    def devices(self) -> list[Device]:
        return [d for p in self.discover() for d in p.list_devices()]

    def slot_types(self) -> dict[str, str]:
        """Every device slot offered on this host -> ``count`` or ``share``."""
        return {slot: kind for p in self.discover() for slot, kind in p.slot_types().items()}

    def slot_names(self) -> set[str]:
        return set(self.slot_types())

    def capacity(self) -> dict[str, Decimal]:
        """The host's totals of every device slot (whole devices, or shares)."""
        out: dict[str, Decimal] = {}
        for d in self.devices():
            out[d.slot] = out.get(d.slot, Decimal(0)) + d.capacity
        return out

    def allocator(self) -> DeviceAllocator | None:
        """The admission hook for ``admission.admit``; None when the host has no devices."""
        with self._lock:
            if self._allocator is None:
                devices = self.devices()
                if not devices:
                    return None
                self._allocator = DeviceAllocator(devices, {n["id"]: n["cpus"] for n in numa_nodes()})
            return self._allocator

    def container_options(self, allocation: Mapping | None) -> ContainerOptions:
        """Every active plugin's options for a session's ``allocation`` (the KernelSession column)."""
        held = amounts((allocation or {}).get("devices"))
        parts = []
        for plugin in self.discover():
            if not plugin.list_devices():
                continue  # a plugin with nothing on this host has nothing to say to containers
            mine = {slot: per for slot, per in held.items() if self._slot_owner.get(slot) is plugin}
            parts.append(plugin.container_options(mine))
        return ContainerOptions.merge(parts)

    def owner(self, slot: str) -> AcceleratorPlugin | None:
        self.discover()
        return self._slot_owner.get(slot)
