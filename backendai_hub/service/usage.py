"""REST resource: usage (``GET usage``) by user, group or domain per hour, day or month, and its chart
(``GET usage/plot.svg``). Users see their own usage, domain admins their domains', superadmins all."""

from __future__ import annotations

from datetime import datetime, timezone

from ..errors import InvalidInput
from ..resources import STR
from ..usage import plots
from ..usage import query as UQ
from .. import session_query as Q
from ..session_query import Scope
from . import charts
from .base import APIHandler
from .sessions import SessionBase
from .routes import Op, Route
from .rules import session_scope

CHARTS = ("series", "top")


class UsageBase(APIHandler):
    def usage_query(self, extra: tuple[str, ...] = ()) -> UQ.UsageQuery:
        raw = {k: self.get_query_argument(k, None) for k in self.request.arguments if k not in extra}
        return UQ.parse_query(raw, default_by="group" if self.principal.is_admin else "user")

    async def answer(self, q: UQ.UsageQuery) -> dict:
        scope = session_scope(self.principal)
        return await self.run(lambda s: UQ.usage(s, scope, q), readonly=True)


class SessionUsageHandler(SessionBase):
    async def get(self, session_id):
        """One session's usage over its life: who, where, which image, start and end, its slots, and
        allocated and used amounts (as ``GET usage`` counts them)."""
        now = datetime.now(timezone.utc)

        def work(s):
            row = self.session_row(s, session_id)
            d = Q.to_dict(row)
            start = row.started_at or row.created_at
            used = UQ.per_session(s, Scope(everything=True), start, row.terminated_at or now).get(row.id)
            return {**{k: d[k] for k in ("id", "name", "session_uuid", "user", "access_key", "group", "domain",
                                         "image", "status", "resources", "started_at", "terminated_at")},
                    **(used or UQ.amounts({k: 0 for k in UQ.SUMS}, 0, 0))}

        self.write_json(await self.run(work, readonly=True))


class UsageHandler(UsageBase):
    async def get(self):
        """Usage in the period (default: the last 30 days), one item per bucket and user/group/domain,
        with allocated and used amounts in resource-hours; ``totals`` per user/group/domain, most first."""
        self.write_json(await self.answer(self.usage_query()))


def plot_params(get) -> tuple[str, str]:
    chart = get("chart") or "series"
    if chart not in CHARTS:
        raise InvalidInput(f"chart: {chart[:40]!r} is not one of {', '.join(CHARTS)}", field="chart")
    metric = get("metric") or ("cpu_core_hours" if chart == "top" else "gpu_hours")
    if metric not in UQ.METRICS:
        raise InvalidInput(f"metric: {metric[:40]!r} is not one of {', '.join(UQ.METRICS)}", field="metric")
    return chart, metric


class UsagePlotHandler(UsageBase):
    async def get(self):
        """The usage of ``GET usage`` (same parameters) as an SVG chart: ``chart=series`` (stacked bars per
        bucket, default) or ``top`` (the largest users/groups/domains), of ``metric`` (default gpu_hours)."""
        chart, metric = plot_params(lambda k: self.get_query_argument(k, None))
        answer = await self.answer(UQ.check_chartable(self.usage_query(extra=("chart", "metric"))))
        render = (lambda: plots.top_chart(answer, metric, fmt="svg")) if chart == "top" else (
            lambda: plots.series_chart(answer, (metric,), fmt="svg"))
        svg = await charts.POOL.render(render)
        self.set_header("Content-Type", "image/svg+xml")
        self.finish(svg)


NUM = {"type": "number"}
INT = {"type": "integer"}
AMOUNTS = {
    "sessions": INT, "hours": NUM,
    "allocated": {"type": "object", "properties": {"cpu_core_hours": NUM, "mem_gib_hours": NUM, "gpu_hours": NUM}},
    "used": {"type": "object", "properties": {
        "cpu_core_hours": NUM, "cpu_seconds": NUM, "mem_gib_hours": NUM, "mem_avg_bytes": INT,
        "mem_peak_bytes": INT, "gpu_hours": NUM, "gpu_mem_gib_hours": NUM, "disk_read_bytes": INT,
        "disk_write_bytes": INT, "net_rx_bytes": INT, "net_tx_bytes": INT}},
}
SCHEMAS = {
    "SessionUsage": {"id": INT, "name": STR, "session_uuid": STR, "user": STR, "access_key": STR, "group": STR,
                     "domain": STR, "image": STR, "status": STR, "resources": {"type": "object"},
                     "started_at": {"type": "string", "nullable": True},
                     "terminated_at": {"type": "string", "nullable": True}, **AMOUNTS},
    "Usage": {"by": STR, "bucket": STR, "start": STR, "end": STR,
              "items": {"type": "array", "items": {"type": "object", "properties": {
                  "bucket": STR, "user": STR, "group": STR, "domain": STR, **AMOUNTS}}},
              "totals": {"type": "array", "items": {"type": "object", "properties": {
                  "user": STR, "group": STR, "domain": STR, **AMOUNTS}}}},
}
_QUERY = (("by", {"type": "string", "enum": list(UQ.BY), "description": "default: group for admins, user else"}),
          ("bucket", {"type": "string", "enum": list(UQ.BUCKETS), "description": "UTC; default day"}),
          ("period", {"type": "string", "description": "back from end: 24h, 30d (default), 2w, 3m"}),
          ("start", {"type": "string", "description": "ISO 8601 date or date-time (instead of period)"}),
          ("end", {"type": "string", "description": "ISO 8601, exclusive; default now"}),
          ("user", STR), ("group", STR), ("domain", STR))
ROUTES = [
    Route(r"sessions/([^/]+)/usage", SessionUsageHandler, params=("session_id",), tag="usage", ops={
        "get": Op(answer="SessionUsage", summary="One session's usage over its life")}),
    Route(r"usage", UsageHandler, tag="usage", ops={"get": Op(answer="Usage", query=_QUERY)}),
    Route(r"usage/plot.svg", UsagePlotHandler, tag="usage", ops={"get": Op(
        binary="an SVG chart (image/svg+xml) of the same usage", query=(
            *_QUERY, ("chart", {"type": "string", "enum": list(CHARTS)}),
            ("metric", {"type": "string", "enum": list(UQ.METRICS)})))}),
]
