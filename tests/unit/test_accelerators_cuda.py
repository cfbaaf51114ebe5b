"""The cuda plugin against a fake NVML module that mimics pynvml's API: discovery, MIG, options, stats."""

from __future__ import annotations

import inspect
import json
from decimal import Decimal
from types import SimpleNamespace

import pynvml
import pytest

from backendai_hub.accelerators import Accelerators
from backendai_hub.accelerators.base import COUNT, SHARE
from backendai_hub.accelerators.cuda import CUDAPlugin, mig_slot

GiB = 2**30


class FakeNVMLError(Exception):
    def __init__(self, value):
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNVML:
    """The slice of pynvml the plugin uses, over a table of GPUs; counts every nvml* call."""

    NVMLError = FakeNVMLError
    NVML_DEVICE_MIG_DISABLE = 0
    NVML_DEVICE_MIG_ENABLE = 1
    NVML_TEMPERATURE_GPU = 0
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NOT_FOUND = 6

    def __init__(self, gpus: list[dict], *, driver: str = "550.54.15", cuda: int = 12040, present: bool = True):
        self.gpus, self.driver, self.cuda, self.present = gpus, driver, cuda, present
        self.calls: list[str] = []
        self.initialised = 0

    def __getattribute__(self, name):
        if name.startswith("nvml"):
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)

    def _check(self):
        if self.initialised <= 0:
            raise FakeNVMLError(1)  # NVML_ERROR_UNINITIALIZED

    # -- system
    def nvmlInit(self):
        if not self.present:
            raise FakeNVMLError(12)  # NVML_ERROR_LIBRARY_NOT_FOUND
        self.initialised += 1

    def nvmlShutdown(self):
        self._check()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self):
        self._check()
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        self._check()
        return self.cuda

    def nvmlSystemGetNVMLVersion(self):
        return "12.550.54.15"

    # -- devices; a handle is ("gpu", i) or ("mig", i, j)
    def nvmlDeviceGetCount(self):
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._check()
        if not 0 <= index < len(self.gpus):
            raise FakeNVMLError(2)  # NVML_ERROR_INVALID_ARGUMENT
        return ("gpu", index)

    def _spec(self, handle):
        self._check()
        if handle[0] == "gpu":
            return self.gpus[handle[1]]
        return self.gpus[handle[1]]["mig"][handle[2]]

    def nvmlDeviceGetName(self, handle):
        return self._spec(handle)["name"]

    def nvmlDeviceGetUUID(self, handle):
        return self._spec(handle)["uuid"]

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        spec = self._spec(handle)
        used = spec.get("used", 0)
        return SimpleNamespace(total=spec["memory"], used=used, free=spec["memory"] - used)

    def nvmlDeviceGetUtilizationRates(self, handle):
        spec = self._spec(handle)
        if handle[0] == "mig":
            raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(gpu=spec.get("util", 0), memory=spec.get("mem_util", 0))

    def nvmlDeviceGetNumaNodeId(self, handle):
        spec = self._spec(handle)
        if spec.get("numa") is None:
            raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return spec["numa"]

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=self._spec(handle)["bus"].encode())  # bytes, as older releases give

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return self._spec(handle).get("cc", (8, 0))

    def nvmlDeviceGetAttributes(self, handle):
        return SimpleNamespace(multiprocessorCount=self._spec(handle)["sms"])

    def nvmlDeviceGetMigMode(self, device):
        spec = self._spec(device)
        if "mig" not in spec:
            raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return [self.NVML_DEVICE_MIG_ENABLE, self.NVML_DEVICE_MIG_ENABLE]

    def nvmlDeviceGetMaxMigDeviceCount(self, device):
        return len(self._spec(device)["mig"])

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device, index):
        if self._spec(device)["mig"][index] is None:
            raise FakeNVMLError(self.NVML_ERROR_NOT_FOUND)
        return ("mig", device[1], index)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return self._spec(handle).get("temp", 40)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._spec(handle).get("power_mw", 60000)


def host_gpus():
    """GPU 0: A100 whole; GPU 1: A100 with two MIG instances (slot 1 empty); GPU 2: H100, NUMA via sysfs."""
    return [
        {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-aaaa", "memory": 40 * GiB, "used": 3 * GiB, "util": 37,
         "mem_util": 12, "numa": 0, "bus": "00000000:07:00.0", "sms": 108},
        {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-bbbb", "memory": 40 * GiB, "numa": 0,
         "bus": "00000000:0F:00.0", "sms": 108, "mig": [
             {"name": "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "uuid": "MIG-1111", "memory": 5 * GiB, "used": GiB,
              "sms": 14},
             None,
             {"name": "NVIDIA A100-SXM4-40GB MIG 3g.20gb", "uuid": "MIG-3333", "memory": 20 * GiB, "sms": 42}]},
        {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-cccc", "memory": 80 * GiB, "util": 99, "numa": None,
         "bus": "00000000:B1:00.0", "sms": 132, "cc": (9, 0)},
    ]


@pytest.fixture
def sysfs(tmp_path):
    dev = tmp_path / "0000:b1:00.0"
    dev.mkdir()
    (dev / "numa_node").write_text("1\n")
    return str(tmp_path)


@pytest.fixture
def nvml():
    return FakeNVML(host_gpus())


def test_the_fake_mimics_pynvml_signatures():
    """Every function the fake offers exists in the real pynvml with the same positional parameters."""
    for name in (n for n in dir(FakeNVML) if n.startswith("nvml")):
        real = getattr(pynvml, name, None)
        assert real is not None, f"pynvml has no {name}"
        params = lambda f: [p.name for p in inspect.signature(f).parameters.values()
                            if p.default is inspect.Parameter.empty and p.name != "self"]
        assert len(params(getattr(FakeNVML, name))) == len(params(real)), name
    for const in ("NVML_DEVICE_MIG_ENABLE", "NVML_TEMPERATURE_GPU", "NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_NOT_FOUND"):
        assert getattr(pynvml, const) == getattr(FakeNVML, const), const


def test_discovery_whole_gpus_mig_instances_and_numa(nvml, sysfs):
    plugin = CUDAPlugin(nvml=nvml, sysfs_pci=sysfs)
    assert plugin.slot_types() == {"cuda.device": COUNT, "cuda.device:1g.5gb-mig": COUNT,
                                   "cuda.device:3g.20gb-mig": COUNT}
    devs = {d.device_id: d for d in plugin.list_devices()}
    assert sorted(devs) == ["0", "1:0", "1:2", "2"]  # the MIG-enabled GPU 1 is not offered whole
    assert (devs["0"].uuid, devs["0"].memory, devs["0"].processors, devs["0"].numa_node) == ("GPU-aaaa", 40 * GiB, 108, 0)
    assert devs["2"].numa_node == 1 and devs["2"].extra["compute_capability"] == "9.0"  # NUMA from sysfs
    assert devs["2"].extra["pci_bus_id"] == "00000000:B1:00.0"
    mig = devs["1:0"]
    assert (mig.slot, mig.uuid, mig.memory, mig.parent, mig.mig, mig.processors) == (
        "cuda.device:1g.5gb-mig", "MIG-1111", 5 * GiB, "1", True, 14)
    summary = plugin.get_physical_info_summary()
    assert (summary["driver_version"], summary["runtime_version"], summary["device_count"]) == ("550.54.15", "12.4", 4)
    assert nvml.initialised == 0  # every init was matched by a shutdown
    json.dumps(plugin.get_physical_info())


def test_container_options_name_exactly_the_allocated_devices_without_calling_nvml(nvml, sysfs):
    plugin = CUDAPlugin(nvml=nvml, sysfs_pci=sysfs)
    plugin.list_devices()
    before = len(nvml.calls)
    opts = plugin.container_options({"cuda.device": {"2": Decimal(1), "0": Decimal(1)}})
    assert opts.device_requests == [{"driver": "nvidia", "device_ids": ["GPU-aaaa", "GPU-cccc"],
                                     "capabilities": [["gpu", "compute", "utility"]]}]
    assert opts.environment == {"NVIDIA_VISIBLE_DEVICES": "GPU-aaaa,GPU-cccc", "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                                "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
    assert opts.mounts == [] and opts.host_config == {}
    mig = plugin.container_options({"cuda.device:3g.20gb-mig": {"1:2": Decimal(1)}})
    assert mig.device_requests[0]["device_ids"] == ["MIG-3333"]
    assert mig.environment["NVIDIA_VISIBLE_DEVICES"] == "MIG-3333"
    # a session without GPUs: nothing requested, and an image's NVIDIA_VISIBLE_DEVICES=all is overridden
    none = plugin.container_options({})
    assert none.device_requests == [] and none.environment == {"NVIDIA_VISIBLE_DEVICES": "void"}
    host = none.apply_to_host_config({"read_only": True})
    assert "device_requests" not in host
    assert len(nvml.calls) == before, nvml.calls[before:]  # the spawn path never touches the driver
    with pytest.raises(ValueError, match="unknown device '7'"):
        plugin.container_options({"cuda.device": {"7": Decimal(1)}})


def test_shared_mode_uses_mps_with_a_thread_percentage_and_memory_limit(nvml, sysfs):
    plugin = CUDAPlugin(nvml=nvml, sysfs_pci=sysfs, shared_mode=True)
    assert plugin.slot_types() == {"cuda.shares": SHARE, "cuda.device:1g.5gb-mig": COUNT,
                                   "cuda.device:3g.20gb-mig": COUNT}
    opts = plugin.container_options({"cuda.shares": {"2": Decimal("0.25")}})
    assert opts.device_requests[0]["device_ids"] == ["GPU-cccc"]
    env = opts.environment
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=20480M"  # a quarter of 80 GiB, container index 0
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/nvidia-mps"
    assert opts.mounts == [{"Type": "bind", "Source": "/tmp/nvidia-mps", "Target": "/tmp/nvidia-mps",
                            "ReadOnly": False}]
    assert opts.host_config == {"ipc_mode": "host"}
    assert "SECURITY" in CUDAPlugin.class_traits()["shared_mode"].help
    assert CUDAPlugin().shared_mode is False


def test_live_stats_per_device_and_summary(nvml, sysfs):
    plugin = CUDAPlugin(nvml=nvml, sysfs_pci=sysfs)
    stats = plugin.collect_live_stats()
    assert stats["0"]["utilisation_percent"] == 37.0 and stats["0"]["memory_used"] == 3 * GiB
    assert stats["0"]["power_w"] == 60.0 and stats["0"]["temperature_c"] == 40
    assert stats["1:0"]["utilisation_percent"] is None and stats["1:0"]["memory_used"] == GiB  # MIG: no util
    assert plugin.collect_live_stats_summary() == {"device_count": 4, "utilisation_percent": 68.0,
                                                   "memory_used": 4 * GiB, "memory_total": 145 * GiB}
    assert nvml.initialised == 0
    json.dumps(stats)


def test_no_driver_means_no_gpus_and_mig_can_be_turned_off(sysfs):
    assert CUDAPlugin(nvml=FakeNVML([], present=False)).slot_types() == {}
    assert CUDAPlugin(nvml=FakeNVML([], present=False)).collect_live_stats() == {}
    plugin = CUDAPlugin(nvml=FakeNVML(host_gpus()), sysfs_pci=sysfs, mig=False)
    assert plugin.slot_types() == {"cuda.device": COUNT}
    assert mig_slot("1g.10gb+me") == "cuda.device:1g.10gb-me-mig"


def test_bytes_from_older_pynvml_releases(sysfs):
    class OldNVML(FakeNVML):
        def nvmlDeviceGetName(self, handle):
            return super().nvmlDeviceGetName(handle).encode()

        def nvmlDeviceGetUUID(self, handle):
            return super().nvmlDeviceGetUUID(handle).encode()

    plugin = CUDAPlugin(nvml=OldNVML(host_gpus()), sysfs_pci=sysfs)
    assert plugin.device("0").uuid == "GPU-aaaa" and plugin.device("1:0").slot == "cuda.device:1g.5gb-mig"


def test_registry_with_the_cuda_plugin_offers_its_totals(nvml, sysfs):
    class Cuda(CUDAPlugin):
        def __init__(self, **kw):
            super().__init__(nvml=nvml, sysfs_pci=sysfs, **kw)

    class Registry(Accelerators):
        def entry_points(self):
            return [("cuda", lambda: Cuda)]

    reg = Registry()
    assert reg.capacity() == {"cuda.device": 2, "cuda.device:1g.5gb-mig": 1, "cuda.device:3g.20gb-mig": 1}
    alloc = reg.allocator().allocate([{"devices": {"cuda.device": {"0": "1"}}}], {"cuda.device": Decimal(1)})
    assert alloc["devices"] == {"cuda.device": {"2": "1"}} and alloc["numa_node"] == 1
    opts = reg.container_options(alloc)
    assert opts.device_requests[0]["device_ids"] == ["GPU-cccc"]


def test_live_stats_hook_gives_mig_instances_their_parents_utilisation(sysfs):
    from backendai_hub.accelerators.base import DeviceStats

    gpus = host_gpus()
    gpus[1]["util"] = 55  # the MIG-mode GPU reports a whole-GPU figure
    plugin = CUDAPlugin(nvml=FakeNVML(gpus), sysfs_pci=sysfs)
    stats = plugin.live_stats(["0", "1:0", "9"])
    assert stats == {"0": DeviceStats(util_percent=37.0, mem_used=3 * GiB, mem_total=40 * GiB),
                     "1:0": DeviceStats(util_percent=55.0, mem_used=GiB, mem_total=5 * GiB)}
    assert plugin.live_stats([]) == {}
