"""Device allocation: pure, NUMA-aware choice of free devices (and a CPU set beside them).

The admission hook (:class:`DeviceAllocator`) runs inside ``admission.admit``'s transaction, under
the admission lock, so two sessions never get the same device; what it returns is stored in
``KernelSession.allocation``, summed into the host's ``level_usage`` row (what the hook reads) and
freed when the row is terminated.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_CEILING, Decimal
from typing import Iterable, Mapping, Sequence

from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..models import HOST_USAGE, LevelUsage
from .base import COUNT, Device

Held = dict[str, dict[str, Decimal]]  # slot -> device id -> amount held by live sessions
_QUANTUM = Decimal("0.01")  # fractional shares are allocated in hundredths of a device


_DECIMALS: dict[str, Decimal] = {}  # stored amounts repeat ("1", "0.5"): parse each once


def _dec(value) -> Decimal:
    key = str(value)
    d = _DECIMALS.get(key)
    if d is None:
        if len(_DECIMALS) > 4096:  # bounded, whatever odd amounts a database holds
            _DECIMALS.clear()
        d = _DECIMALS[key] = Decimal(key)
    return d


def held_devices(allocations: Iterable[Mapping | None]) -> Held:
    """What live allocations hold, per slot and device."""
    held: Held = {}
    for alloc in allocations:
        devices = alloc.get("devices") if alloc else None
        if not devices:
            continue
        for slot, per in devices.items():
            h = held.get(slot)
            if h is None:
                h = held[slot] = {}
            for dev, amount in per.items():
                h[dev] = h.get(dev, 0) + _dec(amount)
    return held


def cpu_loads(allocations: Iterable[Mapping | None]) -> dict[int, int]:
    """How many live sessions are pinned to each CPU."""
    load: dict[int, int] = defaultdict(int)
    for alloc in allocations:
        for cpu in (alloc.get("cpuset") if alloc else None) or ():
            load[cpu] += 1
    return load


def held_by(allocations: Iterable[Mapping | None]) -> tuple[Held, dict[int, int]]:
    """Both :func:`held_devices` and :func:`cpu_loads`."""
    allocations = list(allocations)
    return held_devices(allocations), cpu_loads(allocations)


def _node_key(node: int | None) -> int:
    return -1 if node is None else node


def _pick_count(devices: Sequence[Device], held: Held, slot: str, n: int, prefer: int | None) -> list[Device] | None:
    """``n`` free whole devices, on one NUMA node when any node has enough (the preferred one first)."""
    mine = held.get(slot, {})
    free = [d for d in devices if not mine.get(d.device_id)]
    if len(free) < n:
        return None
    by_node: dict[int | None, list[Device]] = defaultdict(list)
    for d in free:
        by_node[d.numa_node].append(d)
    fitting = [node for node, ds in by_node.items() if len(ds) >= n]
    if fitting:
        # the preferred node, else the tightest fit (keeps larger blocks free for larger requests)
        node = prefer if prefer in fitting else min(fitting, key=lambda k: (len(by_node[k]), _node_key(k)))
        return by_node[node][:n]
    # no single node has enough: spill, largest blocks first
    order = sorted(by_node, key=lambda k: (k != prefer, -len(by_node[k]), _node_key(k)))
    return [d for node in order for d in by_node[node]][:n]


def _pick_share(devices: Sequence[Device], held: Held, slot: str, amount: Decimal,
                prefer: int | None) -> list[tuple[Device, Decimal]] | None:
    """Shares of one device when one has room (best fit), else spread over several."""
    mine = held.get(slot, {})
    room = [(d, d.capacity - mine.get(d.device_id, 0)) for d in devices]
    single = [(d, r) for d, r in room if r >= amount]
    if single:
        best, _ = min(single, key=lambda dr: (dr[0].numa_node != prefer, dr[1], dr[0].index))
        return [(best, amount)]
    if sum(max(Decimal(0), r) for _, r in room) < amount:
        return None
    out: list[tuple[Device, Decimal]] = []
    left = amount
    for d, r in sorted(room, key=lambda dr: (dr[0].numa_node != prefer, -dr[1], dr[0].index)):
        if left <= 0:
            break
        if r <= 0:
            continue
        take = min(r, left)
        out.append((d, take))
        left -= take
    return out


def decide(devices: Sequence[Device], held: Held, request: Mapping[str, Decimal],
           kinds: Mapping[str, str]) -> tuple[dict[str, dict[str, str]], int | None] | None:
    """Devices for every device slot of ``request``; None when the host has none free.

    Returns ``({slot: {device_id: amount}}, numa_node)``; the node is where the devices are (the
    first slot's choice steers the others onto the same node), None when they span nodes.
    Raises InvalidInput for a whole-device slot asked for in fractions.
    """
    by_slot: dict[str, list[Device]] = defaultdict(list)
    for d in devices:
        by_slot[d.slot].append(d)
    chosen: dict[str, dict[str, str]] = {}
    nodes: set[int | None] = set()
    prefer: int | None = None
    for slot in sorted(s for s in request if s in kinds):
        amount = request[slot]
        if kinds[slot] == COUNT:
            if amount != amount.to_integral_value():
                raise InvalidInput(f"resources.{slot}: whole devices only, {amount.normalize():f} requested",
                                   field="resources")
            picked = _pick_count(by_slot[slot], held, slot, int(amount), prefer)
            if picked is None:
                return None
            chosen[slot] = {d.device_id: "1" for d in picked}
            nodes |= {d.numa_node for d in picked}
        else:
            amount = amount.quantize(_QUANTUM, rounding=ROUND_CEILING)
            shares = _pick_share(by_slot[slot], held, slot, amount, prefer)
            if shares is None:
                return None
            chosen[slot] = {d.device_id: format(v.normalize(), "f") for d, v in shares}
            nodes |= {d.numa_node for d, _ in shares}
        if prefer is None and len(nodes) == 1:
            prefer = next(iter(nodes))
    return chosen, (next(iter(nodes)) if len(nodes) == 1 else None)


def numa_cpuset(cpu_load: Mapping[int, int], cpus: int, host_cpus: int, node_cpus: Sequence[int]) -> list[int]:
    """``cpus`` CPUs for a session whose devices sit on a node: that node's least-shared CPUs first."""
    local = {c for c in node_cpus if c < host_cpus}
    order = sorted(range(host_cpus), key=lambda c: (c not in local, cpu_load.get(c, 0), c))
    return sorted(order[:max(1, min(cpus, host_cpus))])


class DeviceAllocator:
    """The ``allocator`` hook of ``admission.admit``: picks free devices under the admission lock.

    ``numa_cpus`` maps NUMA node -> its CPUs (from /sys); with it, a session holding devices on one
    node is pinned to CPUs of that node.
    """

    def __init__(self, devices: Sequence[Device], numa_cpus: Mapping[int, Sequence[int]] | None = None):
        self.devices = list(devices)
        self.kinds = {d.slot: d.kind for d in self.devices}
        self.numa_cpus = dict(numa_cpus or {})

    def wants_devices(self, request: Mapping[str, Decimal]) -> bool:
        return any(slot in self.kinds for slot in request)

    def allocate(self, live: Iterable[Mapping | None], request: Mapping[str, Decimal],
                 host_cpus: int | None = None) -> dict | None:
        """Pure core: the allocation to store given the live sessions' allocations, or None."""
        if not self.wants_devices(request):
            return {}
        live = list(live)
        return self._allocate(live, request, host_cpus, lambda: cpu_loads(live))

    def __call__(self, s: Session, request: Mapping[str, Decimal], host_cpus: int | None = None) -> dict | None:
        if not self.wants_devices(request):
            return {}  # no device slot asked for: nothing to read
        # what every live session holds, summed by admission in the host's level_usage row (one row,
        # however many sessions; admit has usually read it already, so the ORM has it at hand)
        host = s.get(LevelUsage, HOST_USAGE)
        held = (host.held if host is not None else None) or {}
        cpus = {int(c): n for c, n in (held.get("cpus") or {}).items()}
        return self._allocate([held], request, host_cpus, lambda: cpus)

    def _allocate(self, holding, request, host_cpus, cpu_load) -> dict | None:
        result = decide(self.devices, held_devices(holding), request, self.kinds)
        if result is None:
            return None
        chosen, node = result
        out: dict = {"devices": chosen}
        if node is not None:
            out["numa_node"] = node
            if host_cpus and "cpu" in request and self.numa_cpus.get(node):
                cpus = int(request["cpu"].to_integral_value(rounding=ROUND_CEILING))
                out["cpuset"] = numa_cpuset(cpu_load(), cpus, host_cpus, self.numa_cpus[node])
        return out
