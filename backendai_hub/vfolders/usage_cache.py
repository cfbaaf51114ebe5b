"""How much each folder holds, for listings of many folders: measured within a time budget per request,
remembered for a while, the rest measured on a background thread (asked again, the listing has them)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Mapping, Sequence

from ..errors import TenancyError
from .storage import StorageHosts, usage


class UsageCache:
    """``cache([(host, id), ...])`` -> id -> bytes (None: not measured yet)."""

    def __init__(self, storage: StorageHosts, ttl: float = 60.0, budget: float = 0.25,
                 clock: Callable[[], float] = time.monotonic):
        self.storage, self.ttl, self.budget, self._clock = storage, ttl, budget, clock
        self._sizes: dict[str, tuple[float, int | None]] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}  # id -> host, for the background thread
        self._worker: threading.Thread | None = None

    def measure(self, host: str, vfid: str) -> int | None:
        try:
            size, _ = usage(self.storage.ready_path(host, vfid))
        except (TenancyError, OSError):
            size = None
        with self._lock:
            self._sizes[vfid] = (self._clock(), size)
        return size

    def __call__(self, items: Sequence[tuple[str, str]]) -> Mapping[str, int | None]:
        now = self._clock()
        out: dict[str, int | None] = {}
        stale: list[tuple[str, str]] = []
        with self._lock:
            for host, vfid in items:
                hit = self._sizes.get(vfid)
                out[vfid] = hit[1] if hit else None  # an old figure is shown while a new one is measured
                if hit is None or now - hit[0] >= self.ttl:
                    stale.append((host, vfid))
        deadline = now + self.budget
        rest = []
        for host, vfid in stale:
            if self._clock() < deadline:
                out[vfid] = self.measure(host, vfid)
            else:
                rest.append((host, vfid))
        if rest:
            self._later(rest)
        return out

    def _later(self, items: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self._pending.update((vfid, host) for host, vfid in items)
            if self._worker is not None and self._worker.is_alive():
                return
            self._worker = threading.Thread(target=self._drain, name="vfolder-usage", daemon=True)
            self._worker.start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._worker = None
                    return
                vfid, host = self._pending.popitem()
            self.measure(host, vfid)
