"""The chart renderer's own pool: bounded, refusing at once when full, and never in the way of the
default executor that the service's database calls use."""

from __future__ import annotations

import asyncio
import threading

import pytest

from backendai_hub.errors import ServiceUnavailable
from backendai_hub.service.charts import ChartPool


async def test_a_full_renderer_refuses_at_once_and_database_work_still_runs():
    pool, gate = ChartPool(workers=1, max_queued=1, timeout=10), threading.Event()
    drawing = [asyncio.ensure_future(pool.render(gate.wait)) for _ in range(2)]  # one drawing, one waiting
    await asyncio.sleep(0.05)
    with pytest.raises(ServiceUnavailable, match="charts: 2 charts are being drawn") as refused:
        await pool.render(lambda: b"<svg/>")
    assert refused.value.status == 503 and refused.value.retry_after == 5
    # the default executor (every database call) is untouched by the charts' queue
    assert await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, lambda: "db"), 5) == "db"
    gate.set()
    assert await asyncio.gather(*drawing) == [True, True]
    assert await pool.render(lambda: b"<svg/>") == b"<svg/>"  # room again


async def test_a_chart_past_its_time_is_a_503_and_holds_its_place_until_its_thread_ends():
    pool, gate = ChartPool(workers=1, max_queued=0, timeout=0.05), threading.Event()
    with pytest.raises(ServiceUnavailable, match="drawing took longer than 0.05 s"):
        await pool.render(gate.wait)
    with pytest.raises(ServiceUnavailable, match="being drawn"):  # its thread still draws: no new one
        await pool.render(lambda: 1)
    gate.set()
    for _ in range(100):
        await asyncio.sleep(0.01)
        try:
            assert await pool.render(lambda: 2) == 2
            break
        except ServiceUnavailable:
            continue
    else:
        raise AssertionError("the pool never freed the timed-out chart's place")
