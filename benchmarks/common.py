"""Shared helpers of the benchmarks: timing statistics, tables, machine facts and JSON results."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / ".state" / "bench"

# nanoseconds per unit, for converting raw perf_counter_ns samples
UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between ranks (numpy's default)."""
    if not sorted_samples:
        return math.nan
    pos = (len(sorted_samples) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def stats(samples_ns: Iterable[int], unit: str = "us") -> dict:
    """n, mean, min, p50, p95, p99 and max of durations in nanoseconds, expressed in ``unit``."""
    div = UNITS[unit]
    xs = sorted(s / div for s in samples_ns)
    if not xs:
        return {"unit": unit, "n": 0}
    return {
        "unit": unit,
        "n": len(xs),
        "mean": sum(xs) / len(xs),
        "min": xs[0],
        "p50": percentile(xs, 50),
        "p95": percentile(xs, 95),
        "p99": percentile(xs, 99),
        "max": xs[-1],
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def time_calls(fn: Callable[[], object], n: int, *, warmup: int = 0) -> list[int]:
    """Durations of ``n`` calls of ``fn`` (after ``warmup`` untimed ones), in nanoseconds each."""
    clock = time.perf_counter_ns
    for _ in range(warmup):
        fn()
    out = [0] * n
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def timer_overhead_ns(n: int = 20_000) -> float:
    """Median cost of timing an empty call with :func:`time_calls` (what every sample includes)."""
    xs = sorted(time_calls(lambda: None, n, warmup=1000))
    return percentile(xs, 50)


def _fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


COLUMNS = ("n", "p50", "p95", "p99", "mean")


def print_table(title: str, rows: Mapping[str, dict], *, unit: str | None = None,
                columns: Sequence[str] = COLUMNS, extra: Mapping[str, Mapping[str, str]] | None = None,
                file=None) -> None:
    """One small aligned table: a row per label, a column per statistic (all rows in one unit)."""
    file = file or sys.stdout
    unit = unit or next((r.get("unit") for r in rows.values()), "")
    extra = extra or {}
    extra_cols = sorted({k for e in extra.values() for k in e})
    header = ["", *[c if c == "n" else f"{c} ({unit})" for c in columns], *extra_cols]
    body = []
    for label, r in rows.items():
        cells = [label]
        for c in columns:
            v = r.get(c, math.nan)
            cells.append(str(v) if c == "n" else _fmt(v))
        cells += [extra.get(label, {}).get(k, "") for k in extra_cols]
        body.append(cells)
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(str(c).rjust(w) for c, w in zip(cells[1:], widths[1:]))])

    print(f"\n{title}", file=file)
    print(line(header), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for cells in body:
        print(line(cells), file=file)


def print_ratios(title: str, ratios: Mapping[str, float], file=None) -> None:
    file = file or sys.stdout
    print(f"\n{title}", file=file)
    width = max(map(len, ratios), default=0)
    for label, value in ratios.items():
        print(f"  {label.ljust(width)}  {value:.2f}x", file=file)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict:
    """What the numbers depend on: interpreter, platform, CPUs, commit."""
    try:
        cpus_usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus_usable = os.cpu_count()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cpus_usable": cpus_usable,
        "commit": _git_commit(),
    }


def write_result(name: str, result: dict, out_dir: Path = DEFAULT_OUT) -> Path:
    """Write ``<out_dir>/<name>.json`` with the result, a timestamp and the machine facts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **result,
    }
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path
