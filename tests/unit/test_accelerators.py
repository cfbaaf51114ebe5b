"""Accelerators without hardware: allocation choices, the mock plugin, plugin discovery, inventory."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from backendai_hub.accelerators import (
    Accelerators,
    ContainerOptions,
    Device,
    DeviceAllocator,
)
from backendai_hub.accelerators.allocation import decide, held_by, numa_cpuset
from backendai_hub.accelerators.base import COUNT, SHARE, AcceleratorPlugin
from backendai_hub.accelerators.inventory import (
    Inventory,
    agent_id,
    cpu_info,
    holders_from,
    memory_info,
    numa_nodes,
    parse_cpulist,
    render_table,
)
from backendai_hub.accelerators.mock import MockPlugin, mock_devices
from backendai_hub.errors import InvalidInput
from backendai_hub.policy import parse_slots


def gpus(n, slot="cuda.device", kind=COUNT, nodes=(0,), capacity=1):
    return [Device("mock", str(i), slot, Decimal(capacity), kind, numa_node=nodes[i % len(nodes)], index=i,
                   memory=16 * 2**30) for i in range(n)]


def alloc(**slots):
    """alloc(cuda_device={"0": "1"}) -> {"devices": {"cuda.device": {"0": "1"}}}"""
    return {"devices": {k.replace("_", "."): v for k, v in slots.items()}}


# -- allocation: pure decisions ------------------------------------------------------------------

DEVICES_2_NODES = [Device("mock", str(i), "cuda.device", numa_node=(0 if i < 2 else 1), index=i) for i in range(6)]
KINDS = {"cuda.device": COUNT, "cuda.shares": SHARE}


@pytest.mark.parametrize("live, request_, expected", [
    # nothing held: lowest ids on the tightest node that fits (node 0 has 2, node 1 has 4)
    ([], "cuda.device=1", ({"cuda.device": {"0": "1"}}, 0)),
    ([], "cuda.device=2", ({"cuda.device": {"0": "1", "1": "1"}}, 0)),
    ([], "cuda.device=3", ({"cuda.device": {"2": "1", "3": "1", "4": "1"}}, 1)),
    # node 0 half used: a pair goes to node 1 rather than straddling
    ([alloc(cuda_device={"0": "1"})], "cuda.device=2", ({"cuda.device": {"2": "1", "3": "1"}}, 1)),
    # no node has 5 free: spill over both nodes, largest block first
    ([alloc(cuda_device={"5": "1", "0": "1"})], "cuda.device=5", None),
    ([], "cuda.device=5", ({"cuda.device": {"2": "1", "3": "1", "4": "1", "5": "1", "0": "1"}}, None)),
    # all held: nothing
    ([alloc(cuda_device={str(i): "1" for i in range(6)})], "cuda.device=1", None),
    # a terminated row is not passed in at all; an empty allocation holds nothing
    ([{}, None, {"cpuset": [0]}], "cuda.device=1", ({"cuda.device": {"0": "1"}}, 0)),
    # no device slot asked for
    ([], "cpu=1", ({}, None)),
])
def test_whole_devices_are_chosen_numa_first(live, request_, expected):
    held, _ = held_by(live)
    assert decide(DEVICES_2_NODES, held, parse_slots(request_), KINDS) == expected


@pytest.mark.parametrize("live, amount, expected", [
    ([], "0.5", {"0": "0.5"}),
    # best fit: the device with the least room that still fits
    ([alloc(cuda_shares={"0": "0.3"}), alloc(cuda_shares={"1": "0.6"})], "0.4", {"1": "0.4"}),
    ([alloc(cuda_shares={"0": "0.3"}), alloc(cuda_shares={"1": "0.6"})], "0.7", {"0": "0.7"}),
    # no single device has room: spread, largest room first
    ([alloc(cuda_shares={"0": "0.5"}), alloc(cuda_shares={"1": "0.6"})], "0.8", {"0": "0.5", "1": "0.3"}),
    ([alloc(cuda_shares={"0": "0.5"}), alloc(cuda_shares={"1": "0.6"})], "1", None),
    # hundredths: 0.333 is rounded up
    ([], "0.333", {"0": "0.34"}),
])
def test_fractional_shares_best_fit_then_spread(live, amount, expected):
    devices = gpus(2, "cuda.shares", SHARE)
    held, _ = held_by(live)
    result = decide(devices, held, {"cuda.shares": Decimal(amount)}, KINDS)
    assert (result[0]["cuda.shares"] if result else None) == expected


def test_whole_device_slots_refuse_fractions():
    with pytest.raises(InvalidInput, match="whole devices only, 1.5 requested"):
        decide(gpus(2), {}, {"cuda.device": Decimal("1.5")}, KINDS)


def test_mig_instances_are_their_own_slot_and_several_slots_share_a_node():
    devices = [Device("m", "0", "cuda.device", numa_node=1, index=0),
               Device("m", "1", "cuda.device", numa_node=0, index=1),
               Device("m", "2:0", "cuda.device:1g.10gb-mig", numa_node=0, index=2),
               Device("m", "3:0", "cuda.device:1g.10gb-mig", numa_node=1, index=3)]
    kinds = {d.slot: d.kind for d in devices}
    chosen, node = decide(devices, {}, parse_slots("cuda.device=1,cuda.device:1g.10gb-mig=1"), kinds)
    # the first slot (sorted) lands on node 0 (tightest, lowest), the MIG instance follows it there
    assert chosen == {"cuda.device": {"1": "1"}, "cuda.device:1g.10gb-mig": {"2:0": "1"}} and node == 0
    assert decide(devices, {}, parse_slots("cuda.device:1g.10gb-mig=3"), kinds) is None


def test_cpuset_sits_on_the_devices_node():
    a = DeviceAllocator(DEVICES_2_NODES, numa_cpus={0: [0, 1, 2, 3], 1: [4, 5, 6, 7]})
    out = a.allocate([alloc(cuda_device={"0": "1"}) | {"cpuset": [4, 5]}], parse_slots("cpu=2,cuda.device=2"), 8)
    assert out == {"devices": {"cuda.device": {"2": "1", "3": "1"}}, "numa_node": 1, "cpuset": [6, 7]}
    # no host_cpus (pinning off) or no cpu slot: devices only
    assert "cpuset" not in a.allocate([], parse_slots("cpu=2,cuda.device=1"), None)
    assert numa_cpuset({0: 3}, 2, 4, [0, 1]) == [0, 1]  # local first, even when more loaded
    assert numa_cpuset({}, 3, 4, [2, 3]) == [0, 2, 3]  # spills to other nodes when the node is small
    assert a.allocate([], parse_slots("cpu=1"), 8) == {}


def test_allocator_reads_only_what_live_sessions_hold():
    held, cpu_load = held_by([alloc(cuda_shares={"0": "0.25"}), alloc(cuda_shares={"0": "0.5"}) | {"cpuset": [1]}])
    assert held == {"cuda.shares": {"0": Decimal("0.75")}} and cpu_load == {1: 1}


# -- the mock plugin ---------------------------------------------------------------------------------

def test_mock_devices_from_configuration_discrete():
    plugin = MockPlugin(devices=[
        {"model": "Mock A100", "memory": "40g", "processors": 108, "numa_node": 0},
        {"model": "Mock A100", "memory": "40g", "processors": 108, "numa_node": 1},
        {"id": "mig0", "model": "Mock A100 MIG", "memory": "10g", "mig": True, "mig_profile": "1g.10gb"}])
    assert plugin.slot_types() == {"cuda.device": COUNT, "cuda.device:1g.10gb-mig": COUNT}
    devs = plugin.list_devices()
    assert [(d.device_id, d.memory, d.numa_node, d.mig) for d in devs] == [
        ("0", 40 * 2**30, 0, False), ("1", 40 * 2**30, 1, False), ("mig0", 10 * 2**30, 0, True)]
    opts = plugin.container_options({"cuda.device": {"1": Decimal(1)}})
    assert opts.environment == {"BACKENDAI_MOCK_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "0"}
    assert opts.device_requests == [] and opts.mounts == []
    both = plugin.container_options({"cuda.device": {"0": Decimal(1), "1": Decimal(1)}})
    assert both.environment == {"BACKENDAI_MOCK_DEVICES": "0,1", "CUDA_VISIBLE_DEVICES": "0,1"}
    # a session without devices is told it has none (its spawner may have had some before)
    assert plugin.container_options({}).environment == {"BACKENDAI_MOCK_DEVICES": "", "CUDA_VISIBLE_DEVICES": ""}


def test_mock_fractional_mode_and_prefix():
    plugin = MockPlugin(devices=mock_devices(2), mode="fractional", slot_prefix="mock", shares_per_device="2")
    assert plugin.slot_types() == {"mock.shares": SHARE}
    assert {d.capacity for d in plugin.list_devices()} == {Decimal(2)}
    env = plugin.container_options({"mock.shares": {"1": Decimal("0.5")}}).environment
    assert env == {"BACKENDAI_MOCK_DEVICES": "1", "MOCK_VISIBLE_DEVICES": "0", "BACKENDAI_MOCK_DEVICES_SHARES": "1:0.5"}


def test_mock_devices_default_from_the_environment(monkeypatch):
    monkeypatch.setenv("BACKENDAI_HUB_MOCK_GPUS", "3")
    assert [d.device_id for d in MockPlugin().list_devices()] == ["0", "1", "2"]
    monkeypatch.delenv("BACKENDAI_HUB_MOCK_GPUS")
    assert MockPlugin().list_devices() == []
    assert mock_devices(4, numa_nodes=2)[2]["numa_node"] == 1


@pytest.mark.parametrize("devices, message", [
    ([{"colour": "red"}], "unknown key 'colour'"),
    ([{"id": "a"}, {"id": "a"}], "id 'a' given twice"),
    ([{"memory": "lots"}], "'lots' is not an amount"),
])
def test_bad_mock_configuration_is_an_error(devices, message):
    with pytest.raises(ValueError, match=message):
        MockPlugin(devices=devices).list_devices()


def test_live_stats_and_summaries_are_json():
    plugin = MockPlugin(devices=mock_devices(2))
    for form in (plugin.get_physical_info(), plugin.get_physical_info_summary(), plugin.collect_live_stats(),
                 plugin.collect_live_stats_summary()):
        json.dumps(form)
    assert plugin.collect_live_stats_summary() == {"device_count": 2, "utilisation_percent": 0.0,
                                                   "memory_used": 0, "memory_total": 32 * 2**30}
    assert plugin.get_physical_info()["1"]["memory"] == 16 * 2**30


# -- discovery through entry points ----------------------------------------------------------------------

class Broken(AcceleratorPlugin):
    key = "broken"

    def discover(self):
        raise RuntimeError("driver exploded")


class Clash(MockPlugin):
    key = "clash"


def registry(*plugins, **config):
    class Registry(Accelerators):
        def entry_points(self):
            return [(name, (lambda c=cls: c)) for name, cls in plugins]

    from traitlets.config import Config

    cfg = Config()
    for key, value in config.items():
        cls, _, trait = key.partition("__")
        cfg[cls][trait] = value
    return Registry(config=cfg)


def test_broken_and_clashing_plugins_are_logged_and_skipped(caplog):
    def unloadable():
        raise ImportError("no module named vendor_sdk")

    class Registry(Accelerators):
        def entry_points(self):
            return [("broken", lambda: Broken), ("clash", lambda: Clash), ("mock", lambda: MockPlugin),
                    ("vendor", unloadable)]

    from traitlets.config import Config

    cfg = Config()
    cfg.MockPlugin.devices = mock_devices(2)  # Clash is a MockPlugin: configured alike, same slots
    reg = Registry(config=cfg)
    with caplog.at_level(logging.ERROR):
        assert [p.key for p in reg.active()] == ["clash"]
    assert reg.failed == {"broken": "RuntimeError: driver exploded",
                          "mock": "slot 'cuda.device' is already offered by plugin 'clash'",
                          "vendor": "ImportError: no module named vendor_sdk"}
    assert "driver exploded" in caplog.text
    assert reg.capacity() == {"cuda.device": Decimal(2)} and reg.slot_names() == {"cuda.device"}


def test_registry_merges_options_and_respects_the_enabled_list():
    reg = registry(("mock", MockPlugin), MockPlugin__devices=mock_devices(2))
    opts = reg.container_options({"devices": {"cuda.device": {"1": "1"}}, "cpuset": [0]})
    assert opts.environment == {"BACKENDAI_MOCK_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "0"}
    assert isinstance(reg.allocator(), DeviceAllocator)
    off = registry(("mock", MockPlugin), Accelerators__plugins=[], MockPlugin__devices=mock_devices(2))
    assert off.slot_names() == set() and off.allocator() is None
    assert off.container_options({"devices": {}}).environment == {}


def test_the_installed_entry_points_are_cuda_and_mock(monkeypatch):
    monkeypatch.setenv("BACKENDAI_HUB_MOCK_GPUS", "2")
    reg = Accelerators()
    assert {name for name, _ in reg.entry_points()} >= {"cuda", "mock"}
    assert reg.slot_names() == {"cuda.device"}  # no NVIDIA driver here: cuda offers nothing


def test_host_config_merge_keeps_the_jail():
    opts = ContainerOptions(device_requests=[{"driver": "nvidia", "device_ids": ["GPU-1"]}],
                            mounts=[{"Type": "bind", "Source": "/m", "Target": "/m"}],
                            host_config={"ipc_mode": "host", "read_only": False})
    jail = {"read_only": True, "cap_drop": ["ALL"]}
    out = opts.apply_to_host_config(jail, base_mounts=["vfolder"])
    assert out["read_only"] is True and out["ipc_mode"] == "host"
    assert out["device_requests"] == [{"driver": "nvidia", "device_ids": ["GPU-1"]}]
    assert out["mounts"] == ["vfolder", {"Type": "bind", "Source": "/m", "Target": "/m"}]
    assert ContainerOptions().apply_to_host_config(jail) == jail


# -- inventory ---------------------------------------------------------------------------------------------

def test_inventory_fields_are_present_and_typed():
    reg = registry(("mock", MockPlugin), MockPlugin__devices=mock_devices(2))
    holders = holders_from([(7, "demo", "", {"devices": {"cuda.device": {"1": "1"}}, "cpuset": [0]})])
    info = Inventory(reg).agent(holders)
    json.dumps(info)
    assert info["id"] == agent_id() and info["status"] == "alive"
    cpu = info["cpu"]
    assert isinstance(cpu["architecture"], str) and isinstance(cpu["vendor"], str) and isinstance(cpu["model"], str)
    assert isinstance(cpu["cores"], int) and isinstance(cpu["threads"], int) and cpu["threads"] >= cpu["cores"] >= 1
    assert cpu["frequency_mhz"] is None or isinstance(cpu["frequency_mhz"], float)
    assert isinstance(cpu["flags"], list) and all(isinstance(f, str) for f in cpu["flags"])
    assert isinstance(info["memory"]["total"], int) and info["memory"]["total"] > 0
    assert info["numa_nodes"] and all(isinstance(n["id"], int) and isinstance(n["cpus"], list) for n in info["numa_nodes"])
    assert info["disks"] and all(isinstance(d["total"], int) and d["total"] >= d["free"] for d in info["disks"])
    (acc,) = info["accelerators"]
    assert acc["plugin"] == "mock" and acc["summary"]["driver_version"] == "mock"
    devices = {d["id"]: d for d in acc["devices"]}
    assert devices["1"]["held_by"] == [{"session_id": 7, "user": "demo", "server_name": "", "amount": "1"}]
    assert devices["0"]["held_by"] == [] and devices["0"]["live"]["utilisation_percent"] == 0.0
    assert devices["0"]["memory"] == 16 * 2**30 and devices["0"]["model"] == "Mock GPU"
    assert info["capacity"]["cuda.device"] == "2" and info["occupied"] == {"cuda.device": "1"}
    table = render_table(info)
    assert "demo/-#7" in table and "Mock GPU" in table and "cuda.device=1/2" in table
    live = Inventory(reg).live_stats()
    json.dumps(live)
    assert set(live) == {"id", "collected_at", "cpu", "memory", "accelerators"}
    assert live["accelerators"][0]["devices"][0]["memory_total"] == 16 * 2**30


def test_parsers_on_sample_files(tmp_path):
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon\ncpu MHz\t\t: 2000.000\n"
        "physical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu avx2\n\n"
        "processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon\ncpu MHz\t\t: 3000.000\n"
        "physical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu avx2\n\n")
    info = cpu_info(tmp_path / "cpuinfo", tmp_path)
    assert (info["vendor"], info["model"], info["cores"], info["threads"], info["frequency_mhz"], info["flags"]) == \
        ("GenuineIntel", "Intel Xeon", 1, 2, 2500.0, ["fpu", "avx2"])
    node = tmp_path / "node" / "node1"
    node.mkdir(parents=True)
    (node / "cpulist").write_text("4-5,7\n")
    (node / "meminfo").write_text("Node 1 MemTotal:       1024 kB\nNode 1 MemFree: 10 kB\n")
    assert numa_nodes(tmp_path / "node") == [{"id": 1, "cpus": [4, 5, 7], "memory": 1024 * 1024}]
    assert numa_nodes(tmp_path / "nothing")[0]["id"] == 0
    (tmp_path / "meminfo").write_text("MemTotal:  2048 kB\nMemAvailable: 1024 kB\n")
    assert memory_info(tmp_path / "meminfo") == {"total": 2048 * 1024, "available": 1024 * 1024}
    assert parse_cpulist("0-2,8") == [0, 1, 2, 8]


def test_live_stats_hook_reports_configured_mock_figures_for_the_devices_asked():
    from backendai_hub.accelerators.base import DeviceStats

    plugin = MockPlugin(devices=mock_devices(3), live={"1": {"util_percent": 80, "mem_used": "4g"}})
    assert plugin.live_stats(["1", "2", "nope"]) == {
        "1": DeviceStats(util_percent=80.0, mem_used=4 * 2**30, mem_total=16 * 2**30),
        "2": DeviceStats(util_percent=0.0, mem_used=0, mem_total=16 * 2**30)}
    assert plugin.live_stats([]) == {}
    plugin.live = {"0": {"util_percent": 25}}  # changed while running: the next read sees it
    assert plugin.live_stats(["0"])["0"].util_percent == 25.0
    assert plugin.collect_live_stats_summary()["utilisation_percent"] == round(25 / 3, 1)
    with pytest.raises(ValueError, match="util_percent"):
        MockPlugin(devices=mock_devices(1), live={"0": {"util_percent": 150}}).live_stats(["0"])
