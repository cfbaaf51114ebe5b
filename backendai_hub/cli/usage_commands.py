"""The CLI's usage commands: ``usage show`` (table or JSON), ``usage plot`` (PNG or SVG) and ``usage
export`` (CSV), on the database (every session) or through the service (the caller's reach)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from ..usage.query import METRICS, QUERY_FIELDS, label
from .commands import UsageError, _out
from .output import emit

CSV_COLUMNS = ("bucket", "key", "sessions", "hours", "allocated.cpu_core_hours", "allocated.mem_gib_hours",
               "allocated.gpu_hours", "used.cpu_core_hours", "used.cpu_seconds", "used.mem_gib_hours",
               "used.mem_avg_bytes", "used.mem_peak_bytes", "used.gpu_hours", "used.gpu_mem_gib_hours",
               "used.disk_read_bytes", "used.disk_write_bytes", "used.net_rx_bytes", "used.net_tx_bytes")
TABLE_COLUMNS = ("key", "sessions", "hours", "gpu_hours", "cpu_core_hours", "mem_gib_hours", "used_cpu_core_hours",
                 "used_gpu_hours", "mem_peak_gib")


def _query(args) -> dict:
    return {k: getattr(args, k, None) for k in QUERY_FIELDS}


def _flat(row: dict, key: str) -> object:
    a, _, b = key.partition(".")
    return row[a][b] if b else row[a]


def cmd_usage_show(backend, args):
    got = backend.usage(_query(args))
    if _out(args) == "json":
        print(json.dumps(got, indent=2))
        return
    rows = [{"key": label(t, got["by"]), "sessions": t["sessions"], "hours": round(t["hours"], 2),
             "gpu_hours": round(t["allocated"]["gpu_hours"], 2),
             "cpu_core_hours": round(t["allocated"]["cpu_core_hours"], 2),
             "mem_gib_hours": round(t["allocated"]["mem_gib_hours"], 2),
             "used_cpu_core_hours": round(t["used"]["cpu_core_hours"], 2),
             "used_gpu_hours": round(t["used"]["gpu_hours"], 2),
             "mem_peak_gib": round(t["used"]["mem_peak_bytes"] / 2**30, 2)} for t in got["totals"]]
    print(f"usage by {got['by']}, {got['start']} to {got['end']} (allocated, except used_*)", file=sys.stderr)
    emit(rows, TABLE_COLUMNS, "table")


def cmd_usage_export(backend, args):
    """Every bucket as CSV rows (to --out or stdout): allocated and used amounts in resource-hours."""
    got = backend.usage(_query(args))
    out_path = getattr(args, "out", None)
    try:
        out = open(out_path, "w", encoding="utf-8", newline="") if out_path else sys.stdout
    except OSError as e:
        raise UsageError(f"--out {out_path}: {e.strerror}") from None
    try:
        w = csv.writer(out)
        w.writerow([got["by"] if c == "key" else c for c in CSV_COLUMNS])
        for item in got["items"]:
            w.writerow([label(item, got["by"]) if c == "key" else _flat(item, c) for c in CSV_COLUMNS])
    finally:
        if out is not sys.stdout:
            out.close()


def cmd_usage_plot(backend, args):
    """A chart of the usage to --out: .png or .svg by its suffix."""
    from ..usage import plots  # matplotlib takes a while to import: only this verb pays for it

    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in plots.FORMATS:
        raise UsageError(f"--out {args.out}: the file must end in .png or .svg")
    metrics = getattr(args, "metric", None) or (["cpu_core_hours"] if getattr(args, "chart", "series") == "top"
                                                 else ["gpu_hours", "cpu_core_hours"])
    got = backend.usage(_query(args))
    data = (plots.top_chart(got, metrics[0], fmt=fmt) if getattr(args, "chart", "series") == "top"
            else plots.series_chart(got, metrics, fmt=fmt))
    try:
        out.write_bytes(data)
    except OSError as e:
        raise UsageError(f"--out {args.out}: {e.strerror}") from None
    print(f"wrote {out} ({len(got['totals'])} {got['by']}s, {got['start']} to {got['end']})", file=sys.stderr)


def add_parser(res, sub) -> None:
    """``usage show|plot|export`` on the CLI's resource parsers (``sub``: parser.py's _sub)."""
    v = res.add_parser("usage", help="resource usage: allocated and used core-, GiB- and GPU-hours").add_subparsers(
        dest="verb", required=True)
    for verb, help, func in (
            ("show", "usage totals per user, group or domain over the period", cmd_usage_show),
            ("plot", "a chart of the usage per bucket (--out FILE.png or .svg)", cmd_usage_plot),
            ("export", "the usage per bucket as CSV (to --out or stdout)", cmd_usage_export)):
        p = sub(v, verb, help, func, read=verb == "show")
        p.add_argument("--by", choices=("user", "group", "domain"), help="default: group (users: user)")
        p.add_argument("--bucket", choices=("hour", "day", "month"), help="UTC buckets (default: day)")
        p.add_argument("--period", metavar="AGE", help="back from --end: 24h, 30d (default), 2w, 3m")
        p.add_argument("--start", metavar="DATE", help="ISO 8601 date or date-time (instead of --period)")
        p.add_argument("--end", metavar="DATE", help="ISO 8601, exclusive (default: now)")
        p.add_argument("-u", "--user")
        p.add_argument("-g", "--group")
        p.add_argument("-d", "--domain")
        if verb == "plot":
            p.add_argument("--out", required=True, metavar="FILE", help="where the chart goes: .png or .svg")
            p.add_argument("--chart", choices=("series", "top"), default="series",
                           help="series: stacked bars per bucket (default); top: the largest over the period")
            p.add_argument("--metric", action="append", choices=sorted(METRICS),
                           help="what to chart (repeatable; default gpu_hours and cpu_core_hours)")
        if verb == "export":
            p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
