"""The mock accelerator: GPUs defined in configuration, for demos and tests on hosts without one."""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation

from traitlets import Dict, Enum, List, Unicode, default

from .. import policy as P
from .base import (
    COUNT,
    SHARE,
    AcceleratorPlugin,
    ContainerOptions,
    Device,
    DeviceAllocation,
)

DEVICE_KEYS = {"id", "model", "memory", "processors", "numa_node", "mig", "mig_profile", "uuid"}


def mock_devices(n: int, *, model: str = "Mock GPU", memory: str = "16g", processors: int = 108,
                 numa_nodes: int = 1) -> list[dict]:
    """``n`` alike mock devices for ``c.MockPlugin.devices``, spread over ``numa_nodes`` nodes."""
    return [{"id": str(i), "model": model, "memory": memory, "processors": processors,
             "numa_node": i * max(1, numa_nodes) // max(1, n)} for i in range(n)]


class MockPlugin(AcceleratorPlugin):
    """Devices that exist only in configuration, allocated like real ones (Backend.AI's mock accelerator).

    A session holding some learns which through environment variables (``BACKENDAI_MOCK_DEVICES``:
    host device ids; ``CUDA_VISIBLE_DEVICES``: container-local indices, as the NVIDIA runtime would
    number them). Nothing reaches the container but those variables.
    """

    key = "mock"

    devices = List(
        Dict(),
        help="""The mock devices, one dict each: ``model``, ``memory`` (e.g. '16g'), ``processors``,
        ``numa_node``, ``mig`` (a MIG instance: allocated as its own slot type) with ``mig_profile``
        (e.g. '1g.10gb'), and optionally ``id`` and ``uuid``.

        Default: ``$BACKENDAI_HUB_MOCK_GPUS`` alike devices (see ``mock_devices``), or none.
        """,
    ).tag(config=True)

    @default("devices")
    def _default_devices(self):
        count = os.environ.get("BACKENDAI_HUB_MOCK_GPUS", "").strip()
        if not count:
            return []
        if not count.isdigit():
            raise ValueError(f"BACKENDAI_HUB_MOCK_GPUS={count!r} is not a number of devices")
        return mock_devices(int(count))

    mode = Enum(
        ["discrete", "fractional"], "discrete",
        help="""discrete: each device is allocated whole (slot ``<prefix>.device``); fractional: in
        shares (slot ``<prefix>.shares``, ``shares_per_device`` each), as Backend.AI's fractional GPUs.
        MIG devices are always whole.""",
    ).tag(config=True)

    slot_prefix = Unicode(
        "cuda", help="Slot names are <prefix>.device / <prefix>.shares / <prefix>.device:<profile>-mig; "
                     "'cuda' lets the policies written for real GPUs apply to mock ones.",
    ).tag(config=True)

    shares_per_device = Unicode("1", help="Shares one device offers in fractional mode.").tag(config=True)

    devices_env = Unicode(
        "BACKENDAI_MOCK_DEVICES", help="Variable that tells a session the host ids of the devices it holds.",
    ).tag(config=True)

    visible_devices_env = Unicode(
        help="Variable holding container-local device indices (default: CUDA_VISIBLE_DEVICES for the "
             "'cuda' prefix, else <PREFIX>_VISIBLE_DEVICES).",
    ).tag(config=True)

    @default("visible_devices_env")
    def _default_visible_env(self):
        return f"{self.slot_prefix.upper().replace('.', '_').replace('-', '_')}_VISIBLE_DEVICES"

    live = Dict(
        help="""Live figures the mock devices report, by device id: ``{"0": {"util_percent": 80,
        "mem_used": "4g"}}``. Devices not named are idle and empty. Usage sampling and the culler read
        them through ``live_stats()``; a test may change this trait while the service runs.""",
    ).tag(config=True)

    def discover(self) -> list[Device]:
        try:
            shares = Decimal(self.shares_per_device)
        except InvalidOperation:
            raise ValueError(f"MockPlugin.shares_per_device={self.shares_per_device!r} is not a number") from None
        out, seen = [], set()
        for i, spec in enumerate(self.devices):
            unknown = sorted(set(spec) - DEVICE_KEYS)
            if unknown:
                raise ValueError(f"mock device {i}: unknown key {unknown[0]!r} (known: {', '.join(sorted(DEVICE_KEYS))})")
            dev_id = str(spec.get("id", i))
            if dev_id in seen:
                raise ValueError(f"mock device {i}: id {dev_id!r} given twice")
            seen.add(dev_id)
            mig = bool(spec.get("mig", False))
            if mig:
                profile = str(spec.get("mig_profile") or "1g.10gb").lower()
                slot, kind, capacity = f"{self.slot_prefix}.device:{profile}-mig", COUNT, Decimal(1)
            elif self.mode == "fractional":
                slot, kind, capacity = f"{self.slot_prefix}.shares", SHARE, shares
            else:
                slot, kind, capacity = f"{self.slot_prefix}.device", COUNT, Decimal(1)
            if not P.SLOT_NAME_RE.match(slot):
                raise ValueError(f"mock device {i}: {slot!r} is not a valid slot name")
            memory = int(P.parse_amount("mem", spec.get("memory", "16g"), field=f"mock device {i} memory"))
            numa = spec.get("numa_node", 0)
            out.append(Device(
                plugin=self.key, device_id=dev_id, slot=slot, capacity=capacity, kind=kind,
                model=str(spec.get("model", "Mock GPU")), memory=memory,
                processors=int(spec.get("processors", 108)), numa_node=None if numa is None else int(numa),
                uuid=str(spec.get("uuid") or f"MOCK-{dev_id}"), mig=mig, index=i,
                extra={"mig_profile": spec.get("mig_profile")} if mig else {}))
        return out

    def container_options(self, allocation: DeviceAllocation) -> ContainerOptions:
        index = {d.device_id: d.index for d in self.list_devices()}
        held: dict[str, Decimal] = {}
        shares: dict[str, Decimal] = {}
        for slot, per in allocation.items():
            for dev, amount in per.items():
                held[dev] = held.get(dev, Decimal(0)) + amount
                if slot.endswith(".shares"):
                    shares[dev] = shares.get(dev, Decimal(0)) + amount
        ids = sorted(held, key=lambda d: (index.get(d, 1 << 30), d))
        env = {self.devices_env: ",".join(ids),
               self.visible_devices_env: ",".join(str(i) for i in range(len(ids)))}
        if shares:
            env[f"{self.devices_env}_SHARES"] = ",".join(f"{d}:{shares[d].normalize():f}" for d in ids if d in shares)
        return ContainerOptions(environment=env)

    def get_physical_info_summary(self) -> dict:
        return {**super().get_physical_info_summary(), "driver_version": "mock", "runtime_version": "mock",
                "mode": self.mode}

    def collect_live_stats(self) -> dict[str, dict]:
        # no hardware to ask: the configured figures (idle, empty by default), deterministic for tests
        out = {}
        for d in self.list_devices():
            spec = self.live.get(d.device_id) or {}
            util = float(spec.get("util_percent", 0.0))
            if not 0 <= util <= 100:
                raise ValueError(f"MockPlugin.live[{d.device_id!r}].util_percent={util!r} is not in 0..100")
            used = int(P.parse_amount("mem", spec.get("mem_used", 0), field=f"mock device {d.device_id} mem_used"))
            out[d.device_id] = {"utilisation_percent": util, "memory_used": min(used, d.memory),
                                "memory_total": d.memory}
        return out
