"""When a session must stop and why: lifetime, idle timeouts, and what counts as activity (pure)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable


@dataclass(frozen=True)
class Activity:
    """What the culler saw of one session. Every field is optional: a signal it could not read is None."""

    hub: datetime | None = None  # the hub's last_activity of the server (proxy traffic, the server's reports)
    kernel_busy: bool = False  # a kernel is executing right now: the session is not idle
    kernel: datetime | None = None  # the latest kernel activity (the server's /api/kernels)
    terminal: datetime | None = None  # the latest terminal activity (input or output; /api/terminals)
    accelerator: datetime | None = None  # the latest time the devices were busy over the window (UtilWindow)

    def busy(self, now: datetime) -> bool:
        """At work this very moment: a kernel executing, or the devices busy at this pass's sample."""
        return self.kernel_busy or (self.accelerator is not None and self.accelerator >= now)

    def last(self, now: datetime) -> datetime | None:
        """The latest moment the session was active (``now`` while a kernel is busy)."""
        if self.kernel_busy:
            return now
        return max(filter(None, (self.hub, self.kernel, self.terminal, self.accelerator)), default=None)


@dataclass(frozen=True)
class Limits:
    """A keypair policy's limits in seconds (None or 0: none), and whether the session holds devices."""

    lifetime: int | None = None
    idle_timeout: int | None = None
    idle_timeout_accelerator: int | None = None
    holds_accelerators: bool = False

    def idle(self) -> tuple[int | None, str]:
        """The idle timeout that applies, and how its reason names it."""
        if self.holds_accelerators and self.idle_timeout_accelerator:
            return self.idle_timeout_accelerator, " while holding accelerators"
        return self.idle_timeout, ""

    @property
    def any(self) -> bool:
        return bool(self.lifetime or self.idle()[0])


@dataclass(frozen=True)
class Plan:
    """The stop this session heads for: when and why (``at`` None: no limit applies)."""

    at: datetime | None
    reason: str | None

    def due(self, now: datetime) -> bool:
        return self.at is not None and now >= self.at


def plan(started_at: datetime | None, activity: Activity, limits: Limits, now: datetime) -> Plan:
    """The earliest stop the limits set for a session started at ``started_at`` with ``activity``.
    Idleness counts from the latest activity, or from the start when there was none; a session busy
    right now has no idle stop planned (so it is never warned of one, even when the idle timeout is
    shorter than the warning). The lifetime wins a tie (it cannot be put off by activity)."""
    stops: list[tuple[datetime, int, str]] = []
    if limits.lifetime and started_at:
        stops.append((started_at + timedelta(seconds=limits.lifetime), 0,
                      f"max session lifetime of {limits.lifetime} s reached"))
    idle, which = limits.idle()
    reference = max(filter(None, (activity.last(now), started_at)), default=None)
    if idle and reference and not activity.busy(now):
        stops.append((reference + timedelta(seconds=idle), 1, f"idle for more than {idle} s{which}"))
    if not stops:
        return Plan(None, None)
    at, _, reason = min(stops)
    return Plan(at, reason)


def warn_now(p: Plan, now: datetime, warning: float) -> bool:
    """Whether a session heading for ``p`` should be showing its warning now (``warning`` seconds ahead)."""
    return warning > 0 and p.at is not None and (p.at - now).total_seconds() <= warning


class UtilWindow:
    """Accelerator utilisation samples of one session; busy when the mean over ``window`` seconds ending
    at a sample reaches ``threshold`` percent (a blip under the window does not keep a session alive,
    steady work does)."""

    def __init__(self, window: float, threshold: float):
        self.window, self.threshold = timedelta(seconds=window), threshold
        self.samples: deque[tuple[datetime, float]] = deque()
        self.busy_at: datetime | None = None

    def add(self, at: datetime, util_percent: float) -> None:
        self.samples.append((at, util_percent))
        while self.samples and self.samples[0][0] < at - self.window:
            self.samples.popleft()
        if busy(self.samples, self.threshold):
            self.busy_at = at


def busy(samples: Iterable[tuple[datetime, float]], threshold: float) -> bool:
    values = [u for _, u in samples]
    return bool(values) and sum(values) / len(values) >= threshold


def session_util(stats: Iterable[float]) -> float:
    """A session's utilisation from its devices' figures: the busiest device counts (one busy GPU of
    four is a session at work)."""
    return max(stats, default=0.0)
