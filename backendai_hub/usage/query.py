"""Usage queries over the hourly rollups: by user, group or domain, per hour, day or month (UTC),
in resource-hours; parsing of the query parameters (400 naming the field) and visibility."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import distinct, func, or_, select, union_all
from sqlalchemy.orm import Session

from .. import validation as V
from ..errors import InvalidInput, NotFound
from ..models import Domain, Group, User
from ..session_query import Scope
from .accounting import hour_floor
from .models import UsageDay, UsageHour

BY = {"user": ("user_id", User, User.username),
      "group": ("group_id", Group, Group.name),
      "domain": ("domain_id", Domain, Domain.name)}
BUCKETS = ("hour", "day", "month")
_TEXT_LEN = {"hour": 13, "day": 10, "month": 7}  # prefixes of "YYYY-MM-DD HH"
_PG_FORMAT = {"hour": "YYYY-MM-DD HH24", "day": "YYYY-MM-DD", "month": "YYYY-MM"}
_PERIOD = re.compile(r"(\d{1,4})([hdwm])")
_PERIOD_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_BUCKETS = 10_000
MAX_SPAN = timedelta(days=1100)
# usage exists between these (and date arithmetic stays far from datetime's limits)
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
GIB = float(1 << 30)
QUERY_FIELDS = ("by", "bucket", "period", "start", "end", "user", "group", "domain")
METRICS = {  # what a chart can show: metric -> (label, where in an item)
    "gpu_hours": ("GPU-hours allocated", ("allocated", "gpu_hours")),
    "cpu_core_hours": ("core-hours allocated", ("allocated", "cpu_core_hours")),
    "mem_gib_hours": ("GiB-hours allocated", ("allocated", "mem_gib_hours")),
    "gpu_hours_used": ("GPU-hours busy", ("used", "gpu_hours")),
    "cpu_core_hours_used": ("core-hours used", ("used", "cpu_core_hours")),
    "mem_gib_hours_used": ("GiB-hours used", ("used", "mem_gib_hours")),
}


@dataclass(frozen=True)
class UsageQuery:
    by: str = "group"
    bucket: str = "day"
    start: datetime = datetime(1970, 1, 1, tzinfo=timezone.utc)
    end: datetime = datetime(1970, 1, 1, tzinfo=timezone.utc)
    user: str | None = None
    group: str | None = None
    domain: str | None = None


def month_start(t: datetime, months: int = 0) -> datetime:
    index = t.year * 12 + t.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def period_start(end: datetime, value: str, field: str = "period") -> datetime:
    """``30d``, ``24h``, ``2w``, ``3m`` (calendar months, the day clamped to the month's) back from ``end``."""
    m = _PERIOD.fullmatch(value.strip())
    if not m or int(m[1]) == 0:
        raise InvalidInput(f"{field}: {value[:40]!r} is not a period (24h, 30d, 2w, 3m)", field=field)
    n = int(m[1])
    if m[2] != "m":
        return end - n * _PERIOD_UNITS[m[2]]
    first = month_start(end, -n)
    last_day = (month_start(first, 1) - timedelta(days=1)).day
    return end.replace(year=first.year, month=first.month, day=min(end.day, last_day))


def _ceil_hour(t: datetime) -> datetime:
    floor = hour_floor(t)
    return floor if floor == t else floor + timedelta(hours=1)


def parse_query(raw: Mapping[str, Any], *, now: datetime | None = None, default_by: str = "group") -> UsageQuery:
    """The query's parameters (strings; absent or empty: the default); 400 names the bad field.

    The period is ``start``/``end`` (ISO 8601 dates or date-times, end exclusive) or ``period`` back
    from ``end`` (default: now); both ends are widened to whole UTC hours. Default: the last 30 days.
    """
    got = {k: v for k, v in raw.items() if v not in (None, "")}
    unknown = sorted(set(got) - set(QUERY_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown parameter (known: {', '.join(QUERY_FIELDS)})", field=unknown[0])
    by, bucket = got.get("by", default_by), got.get("bucket", "day")
    if by not in BY:
        raise InvalidInput(f"by: {str(by)[:40]!r} is not one of user, group, domain", field="by")
    if bucket not in BUCKETS:
        raise InvalidInput(f"bucket: {str(bucket)[:40]!r} is not one of hour, day, month", field="bucket")
    now = now or datetime.now(timezone.utc)
    end = V.timestamp(got["end"], "end") if "end" in got else now
    if "start" in got and "period" in got:
        raise InvalidInput("period: give either start or period, not both", field="period")
    start = V.timestamp(got["start"], "start") if "start" in got else None
    for name, value in (("start", start), ("end", end)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise InvalidInput(f"{name}: must be between {EARLIEST.year} and {LATEST.year}", field=name)
    if start is None:
        try:
            start = period_start(end, str(got.get("period", "30d")))
        except (OverflowError, ValueError):  # reaches before year 1
            raise InvalidInput(f"period: reaches before {EARLIEST.year}", field="period") from None
        if start < EARLIEST:
            raise InvalidInput(f"period: reaches before {EARLIEST.year}", field="period")
    start, end = hour_floor(start), _ceil_hour(end)
    if end <= start:
        raise InvalidInput("end: must be later than start", field="end")
    if end - start > MAX_SPAN:
        raise InvalidInput(f"period: at most {MAX_SPAN.days} days at once", field="period")
    if bucket == "hour" and (end - start) / timedelta(hours=1) > MAX_BUCKETS:
        raise InvalidInput(f"bucket: at most {MAX_BUCKETS} hour buckets at once; use day or month",
                           field="bucket")
    for name in ("user", "group", "domain"):
        if name in got and (not isinstance(got[name], str) or len(got[name]) > 64):
            raise InvalidInput(f"{name}: not a name", field=name)
    return UsageQuery(by=by, bucket=bucket, start=start, end=end, user=got.get("user"), group=got.get("group"),
                      domain=got.get("domain"))


MAX_CHART_BUCKETS = 750  # bars along a chart's axis: more is unreadable, and costs the renderer seconds
_BUCKET_SPAN = {"hour": timedelta(hours=1), "day": timedelta(days=1), "month": timedelta(days=28)}


def check_chartable(q: UsageQuery) -> UsageQuery:
    """``q`` when a chart of it has at most MAX_CHART_BUCKETS buckets; else a 400 naming ``bucket``."""
    if (q.end - q.start) / _BUCKET_SPAN[q.bucket] > MAX_CHART_BUCKETS:
        raise InvalidInput(f"bucket: a chart shows at most {MAX_CHART_BUCKETS} {q.bucket}s; use a shorter period "
                           f"or a longer bucket", field="bucket")
    return q


def bucket_start(text: str, bucket: str) -> datetime:
    if bucket == "hour":
        return datetime.strptime(text, "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
    if bucket == "day":
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return datetime.strptime(text, "%Y-%m").replace(tzinfo=timezone.utc)


def _bucket_expr(s: Session, bucket: str, when):
    if s.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", when), _PG_FORMAT[bucket])
    return func.substr(when, 1, _TEXT_LEN[bucket])  # SQLite stores UTC text, YYYY-MM-DD HH:...


def _day_floor(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def pieces(start: datetime, end: datetime, bucket: str) -> list[tuple[type, datetime, datetime]]:
    """Which rollup answers which part of [start, end): whole UTC days from the day rows (a 24th of the
    rows), the partial days at the edges and hour buckets from the hour rows. Pure."""
    first = _day_floor(start) if _day_floor(start) == start else _day_floor(start) + timedelta(days=1)
    last = _day_floor(end)
    if bucket == "hour" or first >= last:
        return [(UsageHour, start, end)]
    out = [(UsageDay, first, last)]
    if start < first:
        out.append((UsageHour, start, first))
    if last < end:
        out.append((UsageHour, last, end))
    return out


def _ids_of(s: Session, by: str, name: str, scope: Scope) -> list[int]:
    """The ids a filter names (a group name may exist in several domains); those the caller cannot see
    are as unknown as those that do not exist."""
    _, model, name_col = BY[by]
    out = []
    for row in s.scalars(select(model).where(name_col == name)):
        if not scope.everything:
            domain = row.name if by == "domain" else row.domain.name
            own = by == "user" and row.username == scope.username
            if not own and domain not in scope.domains and not (by != "user" and _member(s, scope, by, row)):
                continue
        out.append(row.id)
    if not out:
        raise NotFound(f"unknown {by} {name!r}", field=by)
    return out


def _member(s: Session, scope: Scope, by: str, row) -> bool:
    """A user's own group and domain are theirs to filter by (they see their own usage in it)."""
    me = s.scalars(select(User).where(User.username == scope.username)).first()
    if me is None:
        return False
    return row.id == me.domain_id if by == "domain" else any(g.id == row.id for g in me.groups)


def _reach(s: Session, scope: Scope, q: UsageQuery) -> list[tuple[str, list[int]]]:
    """The conditions every rollup row must meet: (column, allowed ids), all of them; a pair of the
    caller's reach means "either" (their domains' rows, or their own)."""
    conds: list = []
    if not scope.everything:
        me = s.scalars(select(User.id).where(User.username == scope.username)).first() or 0
        ids = list(s.scalars(select(Domain.id).where(Domain.name.in_(sorted(scope.domains))))) if scope.domains else []
        conds.append((("domain_id", ids), ("user_id", [me])))
    for name, (col, _model, _name_col) in BY.items():
        value = getattr(q, name)
        if value is not None:
            conds.append(((col, _ids_of(s, name, value, scope)),))
    return conds


def _rows(s: Session, scope: Scope, q: UsageQuery, reach=None, group_ids: list[int] | None = None):
    """The rollup rows of the query (day and hour rows, each piece of the period from one), as one
    subquery with columns bucket, key, session_id, SUMS and mem_peak."""
    reach = _reach(s, scope, q) if reach is None else reach
    key = BY[q.by][0]
    parts = []
    for model, start, end in pieces(q.start, q.end, q.bucket):
        when = model.hour if model is UsageHour else model.day
        conds = [when >= start, when < end]
        for alternatives in reach:
            conds.append(or_(*(getattr(model, c).in_(ids) for c, ids in alternatives)))
        if group_ids is not None:
            conds.append(model.group_id.in_(group_ids))
        parts.append(select(_bucket_expr(s, q.bucket, when).label("bucket"), getattr(model, key).label("key"),
                            model.session_id.label("session_id"), *(getattr(model, n).label(n) for n in SUMS),
                            model.mem_peak.label("mem_peak")).where(*conds))
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()


SUMS = ("seconds", "cpu_alloc", "mem_alloc", "accel_alloc", "cpu_used", "mem_used", "accel_used", "accel_mem",
        "disk_read", "disk_write", "net_rx", "net_tx")


def amounts(sums: Mapping[str, float], peak: int, sessions: int) -> dict:
    """Summed resource-seconds -> the answer's resource-hours (core-, GiB-, GPU-hours) and bytes."""
    secs = sums["seconds"] or 0.0
    return {
        "sessions": sessions, "hours": round(secs / 3600, 6),
        "allocated": {"cpu_core_hours": round(sums["cpu_alloc"] / 3600, 6),
                      "mem_gib_hours": round(sums["mem_alloc"] / 3600 / GIB, 6),
                      "gpu_hours": round(sums["accel_alloc"] / 3600, 6)},
        "used": {"cpu_core_hours": round(sums["cpu_used"] / 3600, 6),
                 "cpu_seconds": round(sums["cpu_used"], 3),
                 "mem_gib_hours": round(sums["mem_used"] / 3600 / GIB, 6),
                 "mem_avg_bytes": int(sums["mem_used"] / secs) if secs else 0,
                 "mem_peak_bytes": int(peak or 0),
                 "gpu_hours": round(sums["accel_used"] / 3600, 6),
                 "gpu_mem_gib_hours": round(sums["accel_mem"] / 3600 / GIB, 6),
                 "disk_read_bytes": int(sums["disk_read"]), "disk_write_bytes": int(sums["disk_write"]),
                 "net_rx_bytes": int(sums["net_rx"]), "net_tx_bytes": int(sums["net_tx"])},
    }


def _aggregates(u):
    return [*(func.coalesce(func.sum(getattr(u.c, n)), 0) for n in SUMS), func.max(u.c.mem_peak),
            func.count(distinct(u.c.session_id))]


def _names(s: Session, by: str, ids) -> dict[int, dict]:
    """id -> the fields naming it in an answer (a group comes with its domain: names repeat across domains)."""
    _, model, name_col = BY[by]
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    if by == "group":
        rows = s.execute(select(Group.id, Group.name, Domain.name).join(Domain, Group.domain_id == Domain.id)
                         .where(Group.id.in_(ids)))
        return {i: {"group": g, "domain": d} for i, g, d in rows}
    return {i: {by: n} for i, n in s.execute(select(model.id, name_col).where(model.id.in_(ids)))}


def label(row: Mapping, by: str) -> str:
    """How a user, group (domain/group) or domain is named on charts and in exports."""
    return f"{row['domain']}/{row['group']}" if by == "group" else row[by]


def usage(s: Session, scope: Scope, q: UsageQuery) -> dict:
    """The answer of ``GET api/v1/usage``: one item per (bucket, key) with usage, and totals per key."""
    reach = _reach(s, scope, q)
    u = _rows(s, scope, q, reach)
    rows = s.execute(select(u.c.bucket, u.c.key, *_aggregates(u)).group_by(u.c.bucket, u.c.key)
                     .order_by(u.c.bucket, u.c.key)).all()
    u = _rows(s, scope, q, reach)
    totals = s.execute(select(u.c.key, *_aggregates(u)).group_by(u.c.key)).all()
    names = _names(s, q.by, [r[1] for r in rows] + [t[0] for t in totals])
    items = []
    for r in rows:
        sums = dict(zip(SUMS, r[2:2 + len(SUMS)]))
        items.append({"bucket": bucket_start(r[0], q.bucket).isoformat().replace("+00:00", "Z"),
                      **names.get(r[1], {q.by: f"#{r[1]}"}), **amounts(sums, r[-2], r[-1])})
    tot = []
    for t in totals:
        sums = dict(zip(SUMS, t[1:1 + len(SUMS)]))
        tot.append({**names.get(t[0], {q.by: f"#{t[0]}"}), **amounts(sums, t[-2], t[-1])})
    tot.sort(key=lambda x: (-x["allocated"]["gpu_hours"], -x["allocated"]["cpu_core_hours"], label(x, q.by)))
    return {"by": q.by, "bucket": q.bucket, "start": q.start.isoformat().replace("+00:00", "Z"),
            "end": q.end.isoformat().replace("+00:00", "Z"), "items": items, "totals": tot}


def per_session(s: Session, scope: Scope, start: datetime, end: datetime, group_ids: list[int] | None = None
                ) -> dict[int, dict]:
    """Usage summed per session over [start, end): session id -> amounts (Backend.AI's usage routes)."""
    q = UsageQuery(start=hour_floor(start), end=_ceil_hour(end))
    u = _rows(s, scope, q, group_ids=group_ids)
    out = {}
    for r in s.execute(select(u.c.session_id, *_aggregates(u)).group_by(u.c.session_id)):
        out[r[0]] = amounts(dict(zip(SUMS, r[1:1 + len(SUMS)])), r[-2], r[-1])
    return out
