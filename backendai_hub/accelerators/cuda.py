"""The cuda plugin: NVIDIA GPUs and MIG instances through NVML (nvidia-ml-py, imported as pynvml)."""

from __future__ import annotations

import re
import threading
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, Mapping, Sequence

from traitlets import Any as AnyTrait
from traitlets import Bool, List, Unicode

from .base import (
    COUNT,
    SHARE,
    AcceleratorPlugin,
    ContainerOptions,
    Device,
    DeviceAllocation,
    DeviceStats,
)

_MIG_PROFILE_RE = re.compile(r"(\d+g\.\d+gb(?:\+[a-z0-9]+)?)", re.IGNORECASE)


def _text(value: Any) -> str:
    """NVML strings: str from nvidia-ml-py >= 11.515, bytes from older releases."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def mig_slot(profile: str) -> str:
    """``1g.10gb`` -> ``cuda.device:1g.10gb-mig`` (characters a slot name cannot hold become '-')."""
    return "cuda.device:" + re.sub(r"[^a-z0-9._-]", "-", profile.lower()) + "-mig"


class CUDAPlugin(AcceleratorPlugin):
    """NVIDIA GPUs: whole devices (``cuda.device``), MIG instances (``cuda.device:<profile>-mig``) and,
    opt-in, shares of a device under CUDA MPS (``cuda.shares``).

    Devices reach a session as a Docker ``device_requests`` entry naming their UUIDs (the engine's
    ``nvidia`` driver, i.e. the NVIDIA container toolkit); ``NVIDIA_VISIBLE_DEVICES`` is set by the
    hub to exactly those UUIDs, and to ``void`` for sessions without GPUs, so neither user options
    nor an image's ``ENV`` can widen it.
    """

    key = "cuda"

    nvml = AnyTrait(
        None, allow_none=True,
        help="The NVML module (pynvml's API). None imports pynvml; tests inject a fake module.",
    )

    mig = Bool(
        True, help="Offer the MIG instances of MIG-enabled GPUs, each as a device of slot "
                   "cuda.device:<profile>-mig (a MIG-enabled GPU is then not offered whole).",
    ).tag(config=True)

    shared_mode = Bool(
        False,
        help="""Offer non-MIG GPUs as fractions (slot ``cuda.shares``, 1 per GPU) shared through CUDA MPS,
        instead of whole (``cuda.device``). A session holding 0.25 of a GPU gets
        CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25 and a pinned device-memory limit of a quarter of the GPU.

        Off by default. SECURITY: MPS clients talk to one MPS server per GPU through a pipe directory
        mounted from the host, and the container runs with the host's IPC namespace (``ipc_mode=host``):
        sessions sharing a GPU are no longer isolated from each other (shared memory of every host
        process is visible, a faulting client can take down the others' work on that GPU, and limits
        are cooperative). Enable it only where all users of a host trust each other, with the MPS
        control daemon (nvidia-cuda-mps-control -d) running on the host.""",
    ).tag(config=True)

    mps_pipe_directory = Unicode(
        "/tmp/nvidia-mps", help="CUDA_MPS_PIPE_DIRECTORY of the host's MPS daemon (shared mode only).",
    ).tag(config=True)

    driver = Unicode("nvidia", help="Docker device-request driver for GPUs.").tag(config=True)

    capabilities = List(
        Unicode(), ["gpu", "compute", "utility"],
        help="Docker device-request capabilities (utility makes nvidia-smi work inside).",
    ).tag(config=True)

    sysfs_pci = Unicode("/sys/bus/pci/devices", help="Where the NUMA node of a PCI device is read when "
                                                    "NVML cannot tell.").tag(config=True)

    _versions: dict | None = None
    _nvml_lock = threading.Lock()

    # -- NVML ------------------------------------------------------------------------------------

    def _nv(self):
        if self.nvml is None:
            import pynvml

            self.nvml = pynvml
        return self.nvml

    def _call(self, fn: str, *args, default: Any = None) -> Any:
        """An NVML query that a device may not support (NVMLError -> ``default``)."""
        nv = self._nv()
        func = getattr(nv, fn, None)
        if func is None:
            return default
        try:
            return func(*args)
        except nv.NVMLError:
            return default

    def _numa(self, handle, bus_id: str | None) -> int | None:
        node = self._call("nvmlDeviceGetNumaNodeId", handle)
        if node is None and bus_id:
            # NVML bus ids carry an 8-digit domain ("00000000:3B:00.0"); sysfs uses 4 digits
            domain, _, rest = bus_id.lower().partition(":")
            try:
                node = int((Path(self.sysfs_pci) / f"{domain[-4:]}:{rest}" / "numa_node").read_text())
            except (OSError, ValueError):
                node = None
        return None if node is None or node < 0 else int(node)

    def discover(self) -> list[Device]:
        nv = self._nv()
        with self._nvml_lock:
            try:
                nv.nvmlInit()
            except (nv.NVMLError, OSError) as e:
                self.log.info("cuda: no NVIDIA driver here (%s); no GPUs offered", e)
                self._versions = {}
                return []
            try:
                return self._enumerate(nv)
            finally:
                nv.nvmlShutdown()

    def _enumerate(self, nv) -> list[Device]:
        cuda = self._call("nvmlSystemGetCudaDriverVersion")
        self._versions = {
            "driver_version": _text(self._call("nvmlSystemGetDriverVersion", default="")) or None,
            "runtime_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
            "nvml_version": _text(self._call("nvmlSystemGetNVMLVersion", default="")) or None,
        }
        devices: list[Device] = []
        order = 0
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            name, uuid = _text(nv.nvmlDeviceGetName(h)), _text(nv.nvmlDeviceGetUUID(h))
            pci = self._call("nvmlDeviceGetPciInfo", h)
            bus_id = _text(pci.busId) if pci is not None else None
            numa = self._numa(h, bus_id)
            cc = self._call("nvmlDeviceGetCudaComputeCapability", h)
            attrs = self._call("nvmlDeviceGetAttributes", h)
            mode = self._call("nvmlDeviceGetMigMode", h)
            mig_on = bool(mode) and mode[0] == getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1)
            extra = {"pci_bus_id": bus_id, "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
                     "mig_enabled": mig_on}
            if mig_on:
                if not self.mig:
                    continue
                for j in range(self._call("nvmlDeviceGetMaxMigDeviceCount", h, default=0)):
                    mh = self._call("nvmlDeviceGetMigDeviceHandleByIndex", h, j)
                    if mh is None:
                        continue  # that slot holds no instance
                    mname = _text(nv.nvmlDeviceGetName(mh))
                    m = _MIG_PROFILE_RE.search(mname)
                    profile = m.group(1).lower() if m else "unknown"
                    mattrs = self._call("nvmlDeviceGetAttributes", mh)
                    devices.append(Device(
                        plugin=self.key, device_id=f"{i}:{j}", slot=mig_slot(profile), kind=COUNT,
                        model=mname, memory=int(nv.nvmlDeviceGetMemoryInfo(mh).total),
                        processors=getattr(mattrs, "multiprocessorCount", None), numa_node=numa,
                        uuid=_text(nv.nvmlDeviceGetUUID(mh)), mig=True, parent=str(i), index=order,
                        extra={**extra, "mig_profile": profile}))
                    order += 1
                continue
            shared = self.shared_mode
            devices.append(Device(
                plugin=self.key, device_id=str(i), slot="cuda.shares" if shared else "cuda.device",
                kind=SHARE if shared else COUNT, model=name, memory=int(nv.nvmlDeviceGetMemoryInfo(h).total),
                processors=getattr(attrs, "multiprocessorCount", None), numa_node=numa, uuid=uuid,
                index=order, extra=extra))
            order += 1
        return devices

    # -- spawning (cached facts only: no NVML call here) ----------------------------------------

    def container_options(self, allocation: DeviceAllocation) -> ContainerOptions:
        by_id = {d.device_id: d for d in self.list_devices()}
        held: dict[str, Decimal] = {}
        shared: dict[str, Decimal] = {}
        for per in allocation.values():
            for dev, amount in per.items():
                if dev not in by_id:
                    raise ValueError(f"cuda: allocation names unknown device {dev!r}")
                held[dev] = held.get(dev, Decimal(0)) + amount
                if by_id[dev].kind == SHARE:
                    shared[dev] = shared.get(dev, Decimal(0)) + amount
        if not held:
            return ContainerOptions(environment={"NVIDIA_VISIBLE_DEVICES": "void"})
        devices = sorted((by_id[d] for d in held), key=lambda d: d.index)
        uuids = [d.uuid for d in devices]
        env = {"NVIDIA_VISIBLE_DEVICES": ",".join(uuids), "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
               "NVIDIA_DRIVER_CAPABILITIES": ",".join(c for c in self.capabilities if c != "gpu")}
        opts = ContainerOptions(
            device_requests=[{"driver": self.driver, "device_ids": uuids, "capabilities": [list(self.capabilities)]}],
            environment=env)
        if shared:
            percent = max(int((v * 100).to_integral_value(rounding=ROUND_CEILING)) for v in shared.values())
            env["CUDA_MPS_PIPE_DIRECTORY"] = self.mps_pipe_directory
            env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(min(100, percent))
            # container-local indices follow the host order of the devices handed in
            env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = ",".join(
                f"{i}={int(d.memory * shared[d.device_id]) // 2**20}M"
                for i, d in enumerate(devices) if d.device_id in shared)
            opts.mounts.append({"Type": "bind", "Source": self.mps_pipe_directory,
                                "Target": self.mps_pipe_directory, "ReadOnly": False})
            opts.host_config["ipc_mode"] = "host"
        return opts

    # -- inventory -------------------------------------------------------------------------------

    def get_physical_info_summary(self) -> dict:
        self.list_devices()
        versions = self._versions or {}
        return {**super().get_physical_info_summary(), "driver_version": versions.get("driver_version"),
                "runtime_version": versions.get("runtime_version"), "nvml_version": versions.get("nvml_version"),
                "shared_mode": self.shared_mode}

    def collect_live_stats(self) -> dict[str, dict]:
        devices = self.list_devices()
        if not devices:
            return {}
        nv = self._nv()
        out: dict[str, dict] = {}
        with self._nvml_lock:
            nv.nvmlInit()
            try:
                for d in devices:
                    parent_util = None
                    if d.mig:
                        parent = nv.nvmlDeviceGetHandleByIndex(int(d.parent))
                        h = self._call("nvmlDeviceGetMigDeviceHandleByIndex", parent, int(d.device_id.split(":")[1]))
                        rates = self._call("nvmlDeviceGetUtilizationRates", parent)
                        parent_util = float(rates.gpu) if rates is not None else None
                    else:
                        h = nv.nvmlDeviceGetHandleByIndex(int(d.device_id))
                    mem = self._call("nvmlDeviceGetMemoryInfo", h) if h is not None else None
                    util = None if d.mig or h is None else self._call("nvmlDeviceGetUtilizationRates", h)
                    temp = None if d.mig or h is None else self._call(
                        "nvmlDeviceGetTemperature", h, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
                    power = None if d.mig or h is None else self._call("nvmlDeviceGetPowerUsage", h)
                    out[d.device_id] = {
                        "utilisation_percent": float(util.gpu) if util is not None else None,
                        "memory_utilisation_percent": float(util.memory) if util is not None else None,
                        "memory_used": int(mem.used) if mem is not None else None,
                        "memory_total": int(mem.total) if mem is not None else d.memory,
                        "temperature_c": temp,
                        "power_w": round(power / 1000, 1) if power is not None else None,
                    }
                    if d.mig:
                        out[d.device_id]["parent_utilisation_percent"] = parent_util
            finally:
                nv.nvmlShutdown()
        return out

    def live_stats(self, device_ids: Sequence[str]) -> Mapping[str, DeviceStats]:
        """NVML's figures; a MIG instance (no utilisation of its own in NVML) reports its parent GPU's
        utilisation where the driver gives one (an upper bound: never makes a busy instance look idle)."""
        wanted = {str(d) for d in device_ids}
        if not wanted:
            return {}
        raw = self.collect_live_stats()
        out = {}
        for dev_id in sorted(wanted & set(raw)):
            s = raw[dev_id]
            util = s.get("utilisation_percent")
            if util is None:
                util = s.get("parent_utilisation_percent")
            out[dev_id] = DeviceStats(util_percent=float(util or 0.0), mem_used=int(s.get("memory_used") or 0),
                                      mem_total=int(s.get("memory_total") or 0))
        return out
