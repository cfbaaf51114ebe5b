"""Backend.AI's usage routes the official client calls (manager 23.09 shapes): ``resource/usage/month``,
``resource/usage/period`` (per group, with each container) and ``resource/stats/user/month`` (the
caller's last 30 days in 15-minute bins), answered from our sessions and usage rollups.

Groups are named by name, as in our other compatible routes; times are UTC. ``cpu_used`` is in
milliseconds and ``mem_used`` is the peak, as the manager's last statistics give them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..accelerators import Accelerators
from ..errors import InvalidInput
from ..models import Domain, Group, KernelSession, SessionStatus, User
from ..session_query import Scope, session_name, session_uuid
from ..usage import query as UQ
from ..usage.accounting import allocated
from .backendai_api import CompatBase
from .rules import session_scope

BIN = 900  # seconds: the manager's 15-minute bins
BINS = 2880  # 30 days of them
MAX_PERIOD = timedelta(days=100)


def _month(value) -> tuple[datetime, datetime]:
    if not isinstance(value, str) or len(value) != 6 or not value.isdigit():
        raise InvalidInput("month: expected yyyymm, e.g. 202611", field="month")
    try:
        start = datetime.strptime(value, "%Y%m").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidInput(f"month: {value!r} is not a month", field="month") from None
    if not UQ.EARLIEST <= start < UQ.LATEST:
        raise InvalidInput(f"month: must be between {UQ.EARLIEST.year} and {UQ.LATEST.year}", field="month")
    return start, UQ.month_start(start, 1)


def _date(value, field: str) -> datetime:
    if not isinstance(value, str) or len(value) != 8 or not value.isdigit():
        raise InvalidInput(f"{field}: expected yyyymmdd, e.g. 20261130", field=field)
    try:
        day = datetime.strptime(value, "%Y%m%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not a date", field=field) from None
    if not UQ.EARLIEST <= day < UQ.LATEST:
        raise InvalidInput(f"{field}: must be between {UQ.EARLIEST.year} and {UQ.LATEST.year}", field=field)
    return day


def _visible(scope: Scope):
    if scope.everything:
        return []
    mine = User.username == scope.username
    return [or_(Domain.name.in_(sorted(scope.domains)), mine) if scope.domains else mine]


def _devices(allocation: dict) -> tuple[list[str], float]:
    """The models of the devices a session held, and their processors (the manager's ``smp``: SMs)."""
    reg = Accelerators.instance()
    models, smp = set(), 0.0
    for slot, per in ((allocation or {}).get("devices") or {}).items():
        plugin = reg.owner(slot)
        for dev in per:
            d = plugin.device(dev) if plugin is not None else None
            if d is not None:
                if d.model:
                    models.add(d.model)
                smp += float(d.processors or 0)
    return sorted(models), smp


def container_stats(s: Session, scope: Scope, start: datetime, end: datetime, groups: list[str] | None) -> list[dict]:
    """The manager's ``get_container_stats_for_period``: sessions alive in [start, end), per group."""
    q = (select(KernelSession, Group.name, Domain.name, User.email, User.full_name)
         .join(Group, KernelSession.group_id == Group.id).join(Domain, KernelSession.domain_id == Domain.id)
         .join(User, KernelSession.user_id == User.id)
         .where(KernelSession.started_at.is_not(None), KernelSession.created_at < end,
                or_(KernelSession.terminated_at.is_(None), KernelSession.terminated_at >= start), *_visible(scope))
         .order_by(KernelSession.terminated_at, KernelSession.id))
    if groups is not None:
        q = q.where(Group.name.in_(groups))
    rows = s.execute(q).all()
    used = UQ.per_session(s, scope, start, end, [r[0].group_id for r in rows] or [0])
    out: dict[int, dict] = {}
    for row, gname, dname, email, full_name in rows:
        u = used.get(row.id) or UQ.amounts({k: 0 for k in UQ.SUMS}, 0, 0)
        alloc = allocated(row.slots)
        term = row.terminated_at
        models, smp = _devices(row.allocation)
        info = {
            "id": session_uuid(row.id), "session_id": session_uuid(row.id), "container_id": row.container_id,
            "domain_name": dname, "group_id": gname, "group_name": gname, "name": session_name(row.server_name),
            "access_key": row.access_key, "email": email, "full_name": full_name or "", "agent": "local",
            "cpu_allocated": alloc.cpu, "cpu_used": round(u["used"]["cpu_seconds"] * 1000, 3),
            "mem_allocated": int(alloc.mem), "mem_used": u["used"]["mem_peak_bytes"], "shared_memory": 0,
            "disk_allocated": 0, "disk_used": 0,
            "io_read": u["used"]["disk_read_bytes"], "io_write": u["used"]["disk_write_bytes"],
            "used_time": str(term - row.created_at) if term else None,
            "used_days": (term.toordinal() - row.created_at.toordinal() + 1) if term else None,
            "device_type": models, "smp": smp, "gpu_mem_allocated": 0.0,
            "gpu_allocated": alloc.accel, "nfs": None, "image_id": row.image, "image_name": row.image,
            "created_at": str(row.created_at), "terminated_at": str(term),
            "status": "TERMINATED" if row.status == SessionStatus.terminated else "RUNNING",
            "status_info": row.status_info, "status_changed": str(term or row.started_at), "status_history": {},
            "cluster_mode": "single-node",
        }
        g = out.get(row.group_id)
        if g is None:
            g = out[row.group_id] = {
                "domain_name": dname, "g_id": gname, "g_name": gname, "g_cpu_allocated": 0.0, "g_cpu_used": 0.0,
                "g_mem_allocated": 0, "g_mem_used": 0, "g_shared_memory": 0, "g_disk_allocated": 0, "g_disk_used": 0,
                "g_io_read": 0, "g_io_write": 0, "g_device_type": [], "g_smp": 0.0, "g_gpu_mem_allocated": 0.0,
                "g_gpu_allocated": 0.0, "c_infos": []}
        for key in ("cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "shared_memory", "disk_allocated",
                    "disk_used", "io_read", "io_write", "smp", "gpu_mem_allocated", "gpu_allocated"):
            g[f"g_{key}"] += info[key]
        g["g_device_type"] = sorted(set(g["g_device_type"]) | set(info["device_type"]))
        g["c_infos"].append(info)
    return list(out.values())


def monthly_bins(s: Session, username: str, now: datetime) -> list[dict]:
    """The manager's ``get_time_binned_monthly_stats`` for one user: 2880 15-minute bins ending now."""
    start = now - timedelta(days=30)
    rows = s.scalars(select(KernelSession).join(User, KernelSession.user_id == User.id).where(
        User.username == username, KernelSession.started_at.is_not(None),
        and_(or_(KernelSession.terminated_at.is_(None), KernelSession.terminated_at >= start)))).all()
    used = UQ.per_session(s, Scope(username=username), start, now)
    bins = [{"date": start.timestamp() + i * BIN, **{k: {"value": 0, "unit_hint": hint} for k, hint in (
        ("num_sessions", "count"), ("cpu_allocated", "count"), ("mem_allocated", "bytes"),
        ("gpu_allocated", "count"), ("io_read_bytes", "bytes"), ("io_write_bytes", "bytes"),
        ("disk_used", "bytes"))}} for i in range(BINS)]
    base = start.timestamp()
    for row in rows:
        alloc = allocated(row.slots)
        end = (row.terminated_at or now).timestamp()
        first = max(0, int((row.started_at.timestamp() - base) // BIN))
        last = min(BINS, int((end - base) // BIN) + 1)
        u = (used.get(row.id) or {}).get("used") or {}
        for b in bins[first:last]:
            b["num_sessions"]["value"] += 1
            b["cpu_allocated"]["value"] += alloc.cpu
            b["mem_allocated"]["value"] += int(alloc.mem)
            b["gpu_allocated"]["value"] += alloc.accel
            b["io_read_bytes"]["value"] += u.get("disk_read_bytes", 0)
            b["io_write_bytes"]["value"] += u.get("disk_write_bytes", 0)
    return bins


class CompatUsageMonthHandler(CompatBase):
    """``GET resource/usage/month`` (JSON body: ``month`` yyyymm, ``group_ids``)."""

    async def get(self):
        body = self.body()
        start, end = _month(body.get("month"))
        groups = _groups(body.get("group_ids"), "group_ids")
        scope = session_scope(self.principal)
        self.write_json(await self.run(lambda s: container_stats(s, scope, start, end, groups), readonly=True))


class CompatUsagePeriodHandler(CompatBase):
    """``GET resource/usage/period`` (JSON body: ``group_id``, ``start_date`` and ``end_date`` yyyymmdd,
    the end date included; at most 100 days)."""

    async def get(self):
        body = self.body()
        start = _date(body.get("start_date"), "start_date")
        end = _date(body.get("end_date"), "end_date") + timedelta(days=1)
        if end <= start:
            raise InvalidInput("end_date: must not be before start_date", field="end_date")
        if end - start > MAX_PERIOD:
            raise InvalidInput("end_date: cannot query more than 100 days", field="end_date")
        group = body.get("group_id")
        groups = None if group is None else _groups([group], "group_id")
        scope = session_scope(self.principal)
        self.write_json(await self.run(lambda s: container_stats(s, scope, start, end, groups), readonly=True))


class CompatUserMonthStatsHandler(CompatBase):
    """``GET resource/stats/user/month``: the caller's own sessions, last 30 days, 15-minute bins."""

    async def get(self):
        now = datetime.now(timezone.utc)
        me = self.principal.username
        self.write_json(await self.run(lambda s: monthly_bins(s, me, now), readonly=True))


def _groups(value, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(g, str) and 0 < len(g) <= 64 for g in value):
        raise InvalidInput(f"{field}: expected a list of group names", field=field)
    return value


ROUTES = [(r"resource/usage/month", CompatUsageMonthHandler), (r"resource/usage/period", CompatUsagePeriodHandler),
          (r"resource/stats/user/month", CompatUserMonthStatsHandler)]
