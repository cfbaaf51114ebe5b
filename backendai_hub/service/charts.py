"""Charts are drawn off the event loop in a small thread pool of their own: a burst of chart requests
queues there, bounded, instead of filling the default executor that every database call runs in."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from ..errors import ServiceUnavailable

T = TypeVar("T")


class ChartPool:
    """At most ``workers`` charts drawn at once and ``max_queued`` more waiting; beyond that a request
    is a 503 with Retry-After at once. A chart still drawing after ``timeout`` seconds is a 503 too
    (its thread finishes in the background and counts against the bound until it does)."""

    def __init__(self, workers: int = 2, max_queued: int = 8, timeout: float = 30.0):
        self.workers, self.max_queued, self.timeout = workers, max_queued, timeout
        self._pool: ThreadPoolExecutor | None = None
        self._busy = 0  # drawing or waiting to draw: counted until the thread is done, not the request
        self._lock = threading.Lock()

    def _done(self, _future) -> None:
        with self._lock:
            self._busy -= 1

    async def render(self, draw: Callable[[], T], timeout: float | None = None) -> T:
        with self._lock:
            if self._busy >= self.workers + self.max_queued:
                raise ServiceUnavailable(f"charts: {self._busy} charts are being drawn; try again in a few seconds",
                                         backend="chart renderer", retry_after=5)
            self._busy += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="charts")
        limit = self.timeout if timeout is None else timeout
        future = self._pool.submit(draw)
        future.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except asyncio.TimeoutError:
            raise ServiceUnavailable(f"charts: drawing took longer than {limit:g} s; ask for fewer buckets "
                                     "or a shorter period", backend="chart renderer", retry_after=30) from None


POOL = ChartPool()
