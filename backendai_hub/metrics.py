"""Prometheus metrics of admission and spawn stages (served with the hub's own at /hub/metrics)."""

from prometheus_client import Counter, Histogram

from .errors import TenancyError

ADMISSIONS = Counter("backendai_hub_admissions_total", "Sessions admitted within every policy")
DENIALS = Counter("backendai_hub_denials_total", "Sessions refused, by level:slot or error type", ["reason"])
STAGE = Histogram("backendai_hub_spawn_stage_seconds", "Duration of spawn stages", ["stage"],
                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))


def reason_label(e: TenancyError) -> str:
    """The ``reason`` of a denial: ``level:slot`` for a policy's, else the error's type."""
    level = getattr(e, "level", None)
    return f"{level}:{getattr(e, 'slot', '') or ''}" if level else type(e).__name__
