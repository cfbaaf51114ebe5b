"""Turning samples into usage: pure splitting of a sample's delta at hour edges, and the write that
records a sample and its hours in one transaction (idempotent per session and sample time)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, aliased

from ..models import KernelSession
from .models import UsageDay, UsageHour, UsageSample

HOUR = timedelta(hours=1)
CUMULATIVE = ("cpu_seconds", "disk_read", "disk_write", "net_rx", "net_tx")
HOUR_FIELDS = ("seconds", "cpu_alloc", "mem_alloc", "accel_alloc", "cpu_used", "mem_used", "accel_used",
               "accel_mem", "disk_read", "disk_write", "net_rx", "net_tx")
INT_FIELDS = ("disk_read", "disk_write", "net_rx", "net_tx")


@dataclass(frozen=True)
class Counters:
    """A container's figures at one moment: CPU time and IO cumulative, memory and devices as now."""

    cpu_seconds: float = 0.0
    mem_bytes: int = 0
    mem_peak: int = 0
    disk_read: int = 0
    disk_write: int = 0
    net_rx: int = 0
    net_tx: int = 0
    accel_util: float = 0.0  # the held devices' utilisation summed, percent (2 busy devices: 200)
    accel_mem: int = 0

    @classmethod
    def of(cls, sample: UsageSample) -> "Counters":
        return cls(**{f.name: getattr(sample, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Allocated:
    cpu: float = 0.0  # cores
    mem: float = 0.0  # bytes
    accel: float = 0.0  # devices (fractional shares count as fractions of a device)


def allocated(slots: Mapping[str, object] | None) -> Allocated:
    """A session's slots (``sessions.slots``: decimal strings) as cores, bytes and accelerator devices."""
    slots = {k: Decimal(str(v)) for k, v in (slots or {}).items()}
    accel = sum((v for k, v in slots.items() if k not in ("cpu", "mem")), Decimal(0))
    return Allocated(float(slots.get("cpu", 0)), float(slots.get("mem", 0)), float(accel))


def hour_floor(t: datetime) -> datetime:
    t = t.astimezone(timezone.utc)
    return t.replace(minute=0, second=0, microsecond=0)


def split_hours(t0: datetime, t1: datetime) -> list[tuple[datetime, float]]:
    """[t0, t1) cut at every UTC hour edge: (hour, seconds within it); the seconds add up exactly."""
    out, cur = [], t0
    while cur < t1:
        edge = hour_floor(cur) + HOUR
        end = min(edge, t1)
        out.append((hour_floor(cur), (end - cur).total_seconds()))
        cur = end
    return out


def _delta(prev: float, cur: float) -> float:
    return cur - prev if cur >= prev else cur  # a counter that went back restarted from zero


def _apportion(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` into integers that add up to it (largest remainder)."""
    whole = sum(weights)
    if total <= 0 or whole <= 0:
        return [0] * len(weights)
    raw = [total * w / whole for w in weights]
    out = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def spread(t0: datetime, t1: datetime, prev: Counters | None, cur: Counters, alloc: Allocated
           ) -> dict[datetime, dict[str, float]]:
    """The usage of the interval (t0, t1] between two samples, per UTC hour. Pure.

    Allocated amounts accrue with time; used CPU and IO are the counters' deltas, spread evenly
    over the interval; memory and device use are the mean of the two samples' figures times time
    (with no previous sample, the current figure). ``mem_peak`` is the highest memory seen in the
    hour: either sample's figure, and the cgroup's high-water mark if it rose during the interval.
    """
    pieces = split_hours(t0, t1)
    duration = (t1 - t0).total_seconds()
    if not pieces or duration <= 0:
        return {}
    base = prev or Counters()
    mem = (base.mem_bytes + cur.mem_bytes) / 2 if prev else cur.mem_bytes
    util = (base.accel_util + cur.accel_util) / 2 if prev else cur.accel_util
    amem = (base.accel_mem + cur.accel_mem) / 2 if prev else cur.accel_mem
    cpu = _delta(base.cpu_seconds, cur.cpu_seconds)
    weights = [secs for _, secs in pieces]
    ints = {name: _apportion(int(_delta(getattr(base, name), getattr(cur, name))), weights) for name in INT_FIELDS}
    out = {}
    for i, (hour, secs) in enumerate(pieces):
        row = {"seconds": secs, "cpu_alloc": alloc.cpu * secs, "mem_alloc": alloc.mem * secs,
               "accel_alloc": alloc.accel * secs, "cpu_used": cpu * secs / duration, "mem_used": mem * secs,
               "accel_used": util / 100 * secs, "accel_mem": amem * secs,
               **{name: ints[name][i] for name in INT_FIELDS},
               "mem_peak": max(base.mem_bytes if prev else 0, cur.mem_bytes)}
        out[hour] = row
    last = pieces[-1][0]
    if cur.mem_peak > (base.mem_peak if prev else 0):
        out[last]["mem_peak"] = max(out[last]["mem_peak"], cur.mem_peak)
    return out


def latest(s: Session, session_id: int) -> UsageSample | None:
    return s.scalars(select(UsageSample).where(UsageSample.session_id == session_id)
                     .order_by(UsageSample.sampled_at.desc()).limit(1)).first()


def record(s: Session, session_id: int, at: datetime, counters: Counters | None, *, final: bool = False) -> bool:
    """Record one sample of a session (``counters`` None: no new figures, the last ones stand) and add
    its delta to the session's hours. Idempotent: a sample at or before the last one, or after the
    closing one, changes nothing (returns False). Takes the session's row lock, so that the service's
    sampler and the spawner's stop never count one interval twice."""
    row = s.get(KernelSession, session_id, with_for_update=True)
    if row is None:
        return False
    last = latest(s, session_id)
    if last is not None and (last.final or at <= last.sampled_at):
        return False
    start = last.sampled_at if last is not None else (row.started_at or row.created_at)
    if at < start:
        at = start
    prev = Counters.of(last) if last is not None else None
    cur = counters if counters is not None else (prev or Counters())
    if prev is not None and cur.mem_peak < prev.mem_peak:
        cur = Counters(**{**asdict(cur), "mem_peak": max(prev.mem_peak, cur.mem_bytes)})
    hours = spread(start, at, prev, cur, allocated(row.slots))
    if hours:
        _add(s, row, UsageHour, UsageHour.hour, hours)
        _add(s, row, UsageDay, UsageDay.day, by_day(hours))
    s.add(UsageSample(session_id=session_id, sampled_at=at, final=final, **asdict(cur)))
    return True


def by_day(hours: Mapping[datetime, Mapping[str, float]]) -> dict[datetime, dict[str, float]]:
    """Hourly pieces summed per UTC day (``mem_peak``: the highest). Pure."""
    out: dict[datetime, dict[str, float]] = {}
    for hour, add in hours.items():
        d = out.setdefault(hour.replace(hour=0), {name: 0 for name in HOUR_FIELDS} | {"mem_peak": 0})
        for name in HOUR_FIELDS:
            d[name] += add[name]
        d["mem_peak"] = max(d["mem_peak"], add["mem_peak"])
    return out


def _add(s: Session, row: KernelSession, model, when, pieces: Mapping[datetime, Mapping[str, float]]) -> None:
    """Add ``pieces`` (start -> amounts) to the session's rollup rows of ``model``, creating them."""
    have = {getattr(r, when.key): r for r in s.scalars(select(model).where(
        model.session_id == row.id, when.in_(list(pieces))))}
    for start, add in pieces.items():
        r = have.get(start)
        if r is None:
            r = model(session_id=row.id, user_id=row.user_id, group_id=row.group_id, domain_id=row.domain_id,
                      access_key=row.access_key, mem_peak=0, **{name: 0 for name in HOUR_FIELDS}, **{when.key: start})
            s.add(r)
        for name in HOUR_FIELDS:
            setattr(r, name, (getattr(r, name) or 0) + (int(add[name]) if name in INT_FIELDS else add[name]))
        r.mem_peak = max(r.mem_peak or 0, int(add["mem_peak"]))


def close(s: Session, session_id: int, counters: Counters | None = None) -> bool:
    """The closing sample of a session that has stopped, at its ``terminated_at``: allocated time
    accrues up to then; used amounts are ``counters`` (taken before the container went) or the last."""
    row = s.get(KernelSession, session_id)
    if row is None or row.terminated_at is None or row.started_at is None:
        return False  # never ran: nothing was used
    return record(s, session_id, row.terminated_at, counters, final=True)


def prune_samples(s: Session, before: datetime) -> int:
    """Delete raw samples taken before ``before``, keeping each session's latest one (the next sample's
    delta is counted from it, and a closed session's final figures stay). The hour and day rollups the
    reports read are kept. Returns how many samples went."""
    newer = aliased(UsageSample)
    latest_at = select(func.max(newer.sampled_at)).where(newer.session_id == UsageSample.session_id) \
        .scalar_subquery()
    result = s.execute(delete(UsageSample).where(UsageSample.sampled_at < before,
                                                 UsageSample.sampled_at < latest_at)
                       .execution_options(synchronize_session=False))
    return result.rowcount or 0
