"""Usage charts rendered server-side with matplotlib (no pyplot, no JS): PNG for the CLI, SVG for pages."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display anywhere: the CLI and the service only write files and answers
from matplotlib.figure import Figure  # noqa: E402

from .query import METRICS, label, month_start  # noqa: E402

FORMATS = ("png", "svg")
MAX_SERIES = 12  # more keys than this are summed as "others" so the legend stays readable


def value(item: Mapping, metric: str) -> float:
    a, b = METRICS[metric][1]
    return float(item[a][b])


def _label(bucket: str, kind: str) -> str:
    t = datetime.fromisoformat(bucket.replace("Z", "+00:00"))
    return {"hour": t.strftime("%d %b %H:00"), "day": t.strftime("%d %b"), "month": t.strftime("%b %Y")}[kind]


def _buckets(answer: Mapping) -> list[str]:
    """Every bucket of the period, those without usage too (an empty day shows as a gap, not nothing)."""
    start = datetime.fromisoformat(answer["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(answer["end"].replace("Z", "+00:00"))
    kind, out, t = answer["bucket"], [], start
    t = t if kind == "hour" else t.replace(hour=0) if kind == "day" else t.replace(day=1, hour=0)
    while t < end and len(out) < 10_000:
        out.append(t.isoformat().replace("+00:00", "Z"))
        t = t + timedelta(hours=1) if kind == "hour" else t + timedelta(days=1) if kind == "day" else month_start(t, 1)
    return sorted(set(out) | {i["bucket"] for i in answer["items"]})


def _series(answer: Mapping, metric: str) -> tuple[list[str], dict[str, list[float]]]:
    by = answer["by"]
    buckets = _buckets(answer)
    ranked = [label(t, by) for t in sorted(answer["totals"], key=lambda t: -value(t, metric))]
    keep = ranked[:MAX_SERIES - 1] if len(ranked) > MAX_SERIES else ranked
    index = {b: n for n, b in enumerate(buckets)}
    series = {k: [0.0] * len(buckets) for k in keep}
    for item in answer["items"]:
        key = label(item, by) if label(item, by) in series else "others"
        series.setdefault(key, [0.0] * len(buckets))[index[item["bucket"]]] += value(item, metric)
    return buckets, series


def _colours(answer: Mapping):
    """One colour per user/group/domain, the same in every panel and chart of one answer."""
    names = sorted({label(t, answer["by"]) for t in answer["totals"]})
    cmap = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
    table = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    return lambda name: table.get(name, "#999999")


def _save(fig: Figure, fmt: str) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "backendai-hub"}):
        fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#555", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def series_chart(answer: Mapping, metrics: Sequence[str] = ("gpu_hours", "cpu_core_hours"), fmt: str = "png",
                 title: str | None = None) -> bytes:
    """Stacked bars per bucket, one colour per user/group/domain, one panel per metric."""
    fig = Figure(figsize=(10, 3.4 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    colour = _colours(answer)
    for ax, metric in zip(axes, metrics):
        buckets, series = _series(answer, metric)
        ax.set_title(f"{METRICS[metric][0]} per {answer['by']} per {answer['bucket']}", fontsize=12, loc="left")
        if not buckets or not any(any(v) for v in series.values()):
            _empty(ax, "no usage in this period")
            continue
        x = list(range(len(buckets)))
        bottom = [0.0] * len(buckets)
        for key, values in series.items():
            ax.bar(x, values, bottom=bottom, label=key, color=colour(key), width=0.8)
            bottom = [b + v for b, v in zip(bottom, values)]
        step = max(1, len(buckets) // 15)
        ax.set_xticks(x[::step], [_label(b, answer["bucket"]) for b in buckets[::step]], rotation=45, ha="right",
                      fontsize=9)
        ax.set_ylabel(METRICS[metric][0].split()[0], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title=answer["by"], fontsize=9, title_fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(title or f"Usage {answer['start'][:10]} to {answer['end'][:10]} (UTC)", fontsize=13)
    return _save(fig, fmt)


def top_chart(answer: Mapping, metric: str = "cpu_core_hours", n: int = 10, fmt: str = "svg",
              title: str | None = None) -> bytes:
    """Horizontal bars: the ``n`` users (groups, domains) with the most of ``metric`` over the period."""
    by = answer["by"]
    top = sorted(answer["totals"], key=lambda t: -value(t, metric))[:n]
    fig = Figure(figsize=(7, 0.45 * max(len(top), 3) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title or f"Top {by}s by {METRICS[metric][0]}", fontsize=12, loc="left")
    if not top or not any(value(t, metric) for t in top):
        _empty(ax, "no usage in this period")
        return _save(fig, fmt)
    names = [label(t, by) for t in top][::-1]
    vals = [value(t, metric) for t in top][::-1]
    bars = ax.barh(names, vals, color="#1f77b4")
    ax.bar_label(bars, labels=[f"{v:,.1f}" for v in vals], padding=3, fontsize=9)
    ax.set_xlabel(METRICS[metric][0], fontsize=10)
    ax.margins(x=0.15)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, fmt)
