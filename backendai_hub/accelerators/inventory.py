"""Hardware inventory of this host (the "agent"): CPU, memory, NUMA, disks and accelerators.

Static facts are read once from /proc and /sys and cached; live figures are read per call. Every
function here blocks (file reads, NVML): the REST service calls them on an executor.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from sqlalchemy import select

from .. import policy as P
from ..models import LIVE_STATUSES, KernelSession
from .base import summarize_stats

PROC, SYS_NODE, SYS_CPU = Path("/proc"), Path("/sys/devices/system/node"), Path("/sys/devices/system/cpu")


def agent_id() -> str:
    """This host's id in the inventory (Backend.AI names agents i-<hostname>)."""
    return f"i-{socket.gethostname()}"


def parse_cpulist(text: str) -> list[int]:
    """``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11]."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def cpu_info(cpuinfo: Path = PROC / "cpuinfo", sys_cpu: Path = SYS_CPU) -> dict:
    """Architecture, vendor, model, physical cores, threads, frequency (MHz) and feature flags."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    blocks = [{k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines()) if k}
              for block in text.strip().split("\n\n") if block.strip()]
    procs = [b for b in blocks if "processor" in b and b["processor"].isdigit()] or blocks
    first = procs[0] if procs else {}
    cores = {(b.get("physical id", "0"), b.get("core id", b.get("processor"))) for b in procs
             if "core id" in b}
    sockets = {b.get("physical id") for b in procs if "physical id" in b}
    mhz = [float(b["cpu MHz"]) for b in procs if _is_number(b.get("cpu MHz"))]
    max_khz = _read_int(sys_cpu / "cpu0" / "cpufreq" / "cpuinfo_max_freq")
    threads = len(procs) or os.cpu_count() or 1
    flags = (first.get("flags") or first.get("Features") or "").split()
    return {
        "architecture": platform.machine() or None,
        "vendor": first.get("vendor_id") or first.get("CPU implementer") or None,
        "model": first.get("model name") or first.get("Model") or platform.processor() or None,
        "sockets": len(sockets) or 1,
        "cores": len(cores) or threads,
        "threads": threads,
        "frequency_mhz": round(sum(mhz) / len(mhz), 1) if mhz else None,
        "max_frequency_mhz": round(max_khz / 1000, 1) if max_khz else None,
        "flags": flags,
    }


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def memory_info(meminfo: Path = PROC / "meminfo") -> dict:
    """Total and available memory in bytes."""
    values: dict[str, int] = {}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    total = values.get("MemTotal") or (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return {"total": int(total), "available": values.get("MemAvailable")}


def numa_nodes(root: Path = SYS_NODE) -> list[dict]:
    """NUMA nodes with their CPUs and memory; one node with every CPU where /sys says nothing."""
    nodes = []
    try:
        entries = sorted((p for p in root.iterdir() if p.name.startswith("node") and p.name[4:].isdigit()),
                         key=lambda p: int(p.name[4:]))
    except OSError:
        entries = []
    for p in entries:
        try:
            cpus = parse_cpulist((p / "cpulist").read_text())
        except (OSError, ValueError):
            cpus = []
        total = None
        try:  # per-node meminfo lines read "Node 0 MemTotal:  123456 kB"
            for line in (p / "meminfo").read_text().splitlines():
                if "MemTotal:" in line:
                    total = int(line.split()[-2]) * 1024
        except (OSError, ValueError, IndexError):
            total = None
        nodes.append({"id": int(p.name[4:]), "cpus": cpus, "memory": total})
    if not nodes:
        nodes = [{"id": 0, "cpus": list(range(os.cpu_count() or 1)), "memory": memory_info()["total"]}]
    return nodes


def disks(paths: Iterable[str]) -> list[dict]:
    """Size and use of the filesystem holding each path (one entry per filesystem)."""
    out, seen = [], set()
    for path in paths:
        try:
            st = os.stat(path)
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if st.st_dev in seen:
            continue
        seen.add(st.st_dev)
        out.append({"path": str(path), "total": usage.total, "used": usage.used, "free": usage.free})
    return out


def cpu_times(stat: Path = PROC / "stat") -> tuple[int, int] | None:
    """(busy, total) jiffies since boot over all CPUs."""
    try:
        fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


Holders = Mapping[tuple[str, str], list[dict]]  # (slot, device id) -> sessions holding it


def holders_from(rows: Iterable[tuple[int, str, str, Mapping | None]]) -> dict[tuple[str, str], list[dict]]:
    """``(session id, user, server name, allocation)`` of live sessions -> who holds each device."""
    out: dict[tuple[str, str], list[dict]] = {}
    for sid, user, server, alloc in rows:
        for slot, per in ((alloc or {}).get("devices") or {}).items():
            for dev, amount in per.items():
                out.setdefault((slot, dev), []).append(
                    {"session_id": sid, "user": user, "server_name": server, "amount": str(amount)})
    return out


def live_holders(s) -> dict[tuple[str, str], list[dict]]:
    """Who holds each device, read from the live sessions of our database (``s``: an ORM session)."""
    q = select(KernelSession).where(KernelSession.status.in_(LIVE_STATUSES)).order_by(KernelSession.id)
    return holders_from((r.id, r.user.username, r.server_name, r.allocation) for r in s.scalars(q))


class Inventory:
    """The agent's inventory, static parts cached (``refresh()`` forgets them)."""

    def __init__(self, accelerators, *, disk_paths: Sequence[str] = ("/", "/var/lib/docker", "/tmp"),
                 disk_ttl: float = 60.0):
        self.accelerators = accelerators
        self.disk_paths = tuple(disk_paths)
        self.disk_ttl = disk_ttl
        self._lock = threading.Lock()
        self._static: dict | None = None
        self._disks: tuple[float, list[dict]] | None = None
        self._last_cpu: tuple[float, tuple[int, int]] | None = None

    def refresh(self) -> None:
        with self._lock:
            self._static, self._disks = None, None

    def static(self) -> dict:
        with self._lock:
            if self._static is None:
                self._static = {"cpu": cpu_info(), "total_memory": memory_info()["total"],
                                "numa_nodes": numa_nodes(), "hostname": socket.gethostname(),
                                "os": platform.platform()}
            return self._static

    def _disk_list(self) -> list[dict]:
        now = time.monotonic()
        with self._lock:
            if self._disks is None or now - self._disks[0] > self.disk_ttl:
                self._disks = (now, disks(self.disk_paths))
            return self._disks[1]

    def _accelerators(self, holders: Holders | None, live: bool) -> list[dict]:
        out = []
        for plugin in self.accelerators.active():
            devices = plugin.list_devices()
            if not devices:
                continue
            stats = plugin.collect_live_stats() if live else {}
            physical = plugin.get_physical_info()
            entry = {"plugin": plugin.key, "summary": plugin.get_physical_info_summary(), "devices": []}
            if live:
                entry["live"] = summarize_stats(stats)
            for d in devices:
                dev = dict(physical.get(d.device_id, d.to_dict()))
                dev["live"] = stats.get(d.device_id) if live else None
                if holders is not None:
                    dev["held_by"] = holders.get((d.slot, d.device_id), [])
                entry["devices"].append(dev)
            out.append(entry)
        return out

    def agent(self, holders: Holders | None = None, *, live: bool = True) -> dict:
        """The full inventory (``live`` adds utilisation per device; ``holders`` who holds each)."""
        st = self.static()
        mem = memory_info()
        capacity = {"cpu": Decimal(st["cpu"]["threads"]), "mem": Decimal(st["total_memory"]),
                    **self.accelerators.capacity()}
        occupied: dict[str, Decimal] = {}
        for (slot, _dev), hs in (holders or {}).items():
            for h in hs:
                occupied[slot] = occupied.get(slot, Decimal(0)) + Decimal(h["amount"])
        return {
            "id": agent_id(),
            "hostname": st["hostname"],
            "status": "alive",
            "architecture": st["cpu"]["architecture"],
            "os": st["os"],
            "cpu": dict(st["cpu"]),
            "memory": {"total": st["total_memory"], "available": mem["available"]},
            "numa_nodes": [dict(n) for n in st["numa_nodes"]],
            "disks": [dict(d) for d in self._disk_list()],
            "accelerators": self._accelerators(holders, live),
            "capacity": P.slots_to_json(capacity),
            "occupied": P.slots_to_json(occupied),
            "failed_plugins": self.accelerators.failed,
            "collected_at": _now(),
        }

    def live_stats(self) -> dict:
        """Live figures only: load, CPU and memory use, accelerator utilisation."""
        now, times = time.monotonic(), cpu_times()
        util = None
        if times is not None:
            prev = self._last_cpu
            if prev is None or now - prev[0] > 60:
                time.sleep(0.1)  # no recent sample: take two, 100 ms apart
                prev, now, times = (now, times), time.monotonic(), cpu_times() or times
            busy, total = times[0] - prev[1][0], times[1] - prev[1][1]
            util = round(100.0 * busy / total, 1) if total > 0 else None
            self._last_cpu = (now, times)
        mem = memory_info()
        try:
            load = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            load = None
        accelerators = []
        for plugin in self.accelerators.active():
            if not plugin.list_devices():
                continue
            stats = plugin.collect_live_stats()
            accelerators.append({"plugin": plugin.key, "summary": summarize_stats(stats),
                                 "devices": [{"id": k, **v} for k, v in stats.items()]})
        return {
            "id": agent_id(),
            "collected_at": _now(),
            "cpu": {"utilisation_percent": util, "load_average": load},
            "memory": {"total": mem["total"], "available": mem["available"],
                       "used": mem["total"] - mem["available"] if mem["available"] is not None else None},
            "accelerators": accelerators,
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def render_table(info: Mapping) -> str:
    """Human form of :meth:`Inventory.agent` for ``backendai-hub agent show``."""
    cpu = info.get("cpu") or {}
    lines = [
        f"Agent        {info.get('id')}  ({info.get('hostname')}, {info.get('status')})",
        f"OS           {info.get('os')}",
        f"CPU          {cpu.get('vendor') or '-'} {cpu.get('model') or '-'} ({info.get('architecture')})",
        (f"             {cpu.get('sockets')} socket(s), {cpu.get('cores')} cores, {cpu.get('threads')} threads, "
         f"{cpu.get('frequency_mhz') or '-'} MHz (max {cpu.get('max_frequency_mhz') or '-'})"),
        f"Flags        {len(cpu.get('flags') or [])} ({' '.join(f for f in (cpu.get('flags') or []) if f in _NOTABLE) or '-'})",
        (f"Memory       {_size((info.get('memory') or {}).get('total'))} "
         f"({_size((info.get('memory') or {}).get('available'))} available)"),
    ]
    for n in info.get("numa_nodes") or []:
        lines.append(f"NUMA node {n['id']:<2} cpus {_cpulist(n['cpus'])}, {_size(n.get('memory'))}")
    for d in info.get("disks") or []:
        lines.append(f"Disk         {d['path']}: {_size(d['total'])} ({_size(d['free'])} free)")
    capacity, occupied = info.get("capacity") or {}, info.get("occupied") or {}
    def amount(slot: str, value) -> str:
        return _size(int(Decimal(value))) if P.is_bytes_slot(slot) else P.format_amount(slot, Decimal(value))

    lines.append("Slots        " + (", ".join(f"{k}={amount(k, occupied.get(k, '0'))}/{amount(k, v)}"
                                            for k, v in sorted(capacity.items())) or "-"))
    accs = info.get("accelerators") or []
    if not accs:
        lines.append("Accelerators none")
    for acc in accs:
        s = acc.get("summary") or {}
        lines.append(f"Accelerator  {acc['plugin']}: driver {s.get('driver_version') or '-'}, "
                     f"runtime {s.get('runtime_version') or '-'}, {s.get('device_count')} device(s)")
        header = ("ID", "SLOT", "MODEL", "MEMORY", "NUMA", "UTIL", "HELD BY")
        rows = []
        for d in acc.get("devices") or []:
            live = d.get("live") or {}
            util = live.get("utilisation_percent")
            held = ", ".join(f"{h['user']}/{h['server_name'] or '-'}#{h['session_id']}" for h in d.get("held_by") or [])
            rows.append((str(d["id"]), d["slot"], d.get("model") or "-", _size(d.get("memory")),
                         "-" if d.get("numa_node") is None else str(d["numa_node"]),
                         "-" if util is None else f"{util:.0f}%", held or "free"))
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    failed = info.get("failed_plugins") or {}
    for name, why in sorted(failed.items()):
        lines.append(f"Skipped      plugin {name}: {why}")
    return "\n".join(lines) + "\n"


_NOTABLE = {"avx", "avx2", "avx512f", "amx_tile", "sse4_2", "fma", "aes", "sha_ni", "neon", "sve", "asimd"}


def _cpulist(cpus: Sequence[int]) -> str:
    if not cpus:
        return "-"
    out, start, prev = [], cpus[0], cpus[0]
    for c in list(cpus[1:]) + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        out.append(f"{start}-{prev}" if prev != start else str(start))
        if c is not None:
            start = prev = c
    return ",".join(out)
