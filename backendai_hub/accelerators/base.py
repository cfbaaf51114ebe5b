"""The accelerator plugin interface: devices, slot types, container options, inventory forms."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from traitlets.config import LoggingConfigurable

# slot kinds: whole units per device (cuda.device, MIG instances) or fractions of one (cuda.shares)
COUNT, SHARE = "count", "share"

# allocation[slot][device_id] = amount, as stored in KernelSession.allocation["devices"]
DeviceAllocation = Mapping[str, Mapping[str, Decimal]]


@dataclass(frozen=True)
class Device:
    """One allocatable device: a GPU, a MIG instance, or a configured mock device."""

    plugin: str
    device_id: str  # unique within its plugin; what allocations record
    slot: str  # the slot type it is allocated as, e.g. cuda.device or cuda.device:1g.10gb-mig
    capacity: Decimal = Decimal(1)  # 1 whole device, or the shares it offers
    kind: str = COUNT
    model: str = ""
    memory: int = 0  # bytes
    processors: int | None = None  # SMs (NVIDIA) or cores
    numa_node: int | None = None
    uuid: str | None = None
    mig: bool = False
    parent: str | None = None  # the GPU a MIG instance lives on
    index: int = 0  # enumeration order on the host (container-local numbering follows it)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["capacity"] = format(self.capacity.normalize(), "f")
        out["id"] = out.pop("device_id")
        out["extra"] = dict(self.extra)
        return out


@dataclass(frozen=True)
class DeviceStats:
    """One device's live figures, as usage sampling and the culler read them."""

    util_percent: float  # compute utilisation, 0..100
    mem_used: int  # bytes
    mem_total: int  # bytes


@dataclass
class ContainerOptions:
    """What a session holding some devices needs: docker-py host-config kwargs and environment.

    ``device_requests`` are docker-py DeviceRequest kwargs (``driver``, ``device_ids``,
    ``capabilities``); ``devices`` are ``host:container:perms`` device nodes; ``mounts`` are Engine
    API mount objects; ``host_config`` any other create_host_config kwargs (e.g. ``ipc_mode``).
    """

    device_requests: list[dict] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    mounts: list[dict] = field(default_factory=list)
    host_config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def merge(cls, parts: Iterable["ContainerOptions"]) -> "ContainerOptions":
        out = cls()
        for p in parts:
            out.device_requests += p.device_requests
            out.devices += p.devices
            out.environment.update(p.environment)
            out.mounts += p.mounts
            out.host_config.update(p.host_config)
        return out

    def apply_to_host_config(self, host_config: Mapping[str, Any], base_mounts: Iterable = ()) -> dict:
        """``host_config`` (create_host_config kwargs) with these options added; the jail's keys win.

        Mounts replace DockerSpawner's own list when given, so ``base_mounts`` (its ``mount_binds``)
        are kept in front of ours.
        """
        out = {**self.host_config, **dict(host_config)}
        if self.device_requests:
            out["device_requests"] = [*out.get("device_requests", []), *self.device_requests]
        if self.devices:
            out["devices"] = [*out.get("devices", []), *self.devices]
        if self.mounts:
            out["mounts"] = [*base_mounts, *out.get("mounts", []), *self.mounts]
        return out


class AcceleratorPlugin(LoggingConfigurable):
    """Base class of accelerator plugins (entry point group ``backendai_hub.accelerators``).

    Contract: ``discover()`` may block (driver calls) and runs once, off the event loop; its result
    is cached, so ``list_devices()``, ``slot_types()`` and ``container_options()`` never touch the
    driver and are safe on the spawn path. Inventory methods return JSON-serialisable dicts.
    """

    key: ClassVar[str] = ""  # the plugin's name in logs and inventory (its entry point name)

    _devices: list[Device] | None = None
    _lock: threading.Lock

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._lock = threading.Lock()

    # -- discovery (blocking, cached) ------------------------------------------------------------

    def discover(self) -> list[Device]:
        """Find the devices (blocking); called once by :meth:`list_devices`."""
        raise NotImplementedError

    def list_devices(self) -> list[Device]:
        with self._lock:
            if self._devices is None:
                self._devices = sorted(self.discover(), key=lambda d: (d.index, d.device_id))
            return list(self._devices)

    def refresh(self) -> list[Device]:
        """Forget the cached devices and discover again (e.g. after reconfiguring MIG)."""
        with self._lock:
            self._devices = None
        return self.list_devices()

    def slot_types(self) -> dict[str, str]:
        """Every slot this plugin offers on this host, with its kind (``count`` or ``share``)."""
        return {d.slot: d.kind for d in self.list_devices()}

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.list_devices() if d.device_id == device_id), None)

    # -- spawning --------------------------------------------------------------------------------

    def container_options(self, allocation: DeviceAllocation) -> ContainerOptions:
        """Options for a session holding ``allocation`` (only this plugin's slots; may be empty).

        Called for every session, also those holding none of this plugin's devices, so that a
        plugin can shut devices off explicitly (the cuda plugin sets NVIDIA_VISIBLE_DEVICES=void).
        """
        raise NotImplementedError

    # -- inventory -------------------------------------------------------------------------------

    def get_physical_info(self) -> dict[str, dict]:
        """Static facts per device id: model, memory, processors, NUMA node, uuid, MIG."""
        return {d.device_id: d.to_dict() for d in self.list_devices()}

    def get_physical_info_summary(self) -> dict:
        """Static facts of the plugin as a whole: driver and runtime versions, totals."""
        devices = self.list_devices()
        return {"plugin": self.key, "device_count": len(devices),
                "total_memory": sum(d.memory for d in devices),
                "slots": self.slot_types(), "driver_version": None, "runtime_version": None}

    def collect_live_stats(self) -> dict[str, dict]:
        """Live figures per device id: utilisation (percent) and memory in use (bytes)."""
        return {d.device_id: {"utilisation_percent": None, "memory_used": None, "memory_total": d.memory}
                for d in self.list_devices()}

    def live_stats(self, device_ids: Sequence[str]) -> Mapping[str, DeviceStats]:
        """Live figures of the devices ``device_ids`` (blocking: call it through an executor).

        Ids this plugin does not know are left out. A device whose utilisation the driver does not
        report counts as 0 % unless the plugin says better (the cuda plugin reports a MIG instance
        with its parent GPU's figure, an upper bound).
        """
        wanted = {str(d) for d in device_ids}
        if not wanted:
            return {}
        out = {}
        for dev_id, s in self.collect_live_stats().items():
            if dev_id in wanted:
                out[dev_id] = DeviceStats(util_percent=float(s.get("utilisation_percent") or 0.0),
                                          mem_used=int(s.get("memory_used") or 0),
                                          mem_total=int(s.get("memory_total") or 0))
        return out

    def collect_live_stats_summary(self) -> dict:
        """Live figures of the plugin as a whole (mean utilisation, memory in use)."""
        return summarize_stats(self.collect_live_stats())


def summarize_stats(stats: Mapping[str, Mapping[str, Any]]) -> dict:
    utils = [s["utilisation_percent"] for s in stats.values() if s.get("utilisation_percent") is not None]
    used = [s["memory_used"] for s in stats.values() if s.get("memory_used") is not None]
    return {"device_count": len(stats),
            "utilisation_percent": round(sum(utils) / len(utils), 1) if utils else None,
            "memory_used": sum(used) if used else None,
            "memory_total": sum(int(s.get("memory_total") or 0) for s in stats.values())}


def amounts(allocation: Mapping[str, Mapping[str, object]] | None) -> dict[str, dict[str, Decimal]]:
    """``allocation["devices"]`` as stored (decimal strings) -> Decimals."""
    return {slot: {dev: Decimal(str(v)) for dev, v in per.items()} for slot, per in (allocation or {}).items()}
