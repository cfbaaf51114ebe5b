"""[usage] The spawner's part in usage accounting: the container's last figures, taken at stop before
the container is removed, for the closing sample that the release writes (releasing.py)."""

from __future__ import annotations

import asyncio

from traitlets import Float, HasTraits

from ..models import KernelSession
from ..usage.accounting import Counters
from ..usage.sampling import counters_from_stats, device_figures


class UsageMixin(HasTraits):
    """Mixed into the spawner: ``usage_stats_timeout`` and the figures of the closing sample."""

    usage_stats_timeout = Float(
        10, help="Seconds the stop waits for the Docker engine's last statistics of the container (its CPU "
                 "time, memory, IO) before removing it; past that the session is closed with the service's "
                 "last sample's figures.",
    ).tag(config=True)

    _usage_final: Counters | None = None

    async def _usage_snapshot(self, sid: int | None) -> None:
        """Never raises: without figures the closing sample uses the last ones the service took."""
        self._usage_final = None
        cid = getattr(self, "container_id", None)
        if sid is None or not cid or self.usage_stats_timeout <= 0:
            return
        try:
            stats = await asyncio.wait_for(self.docker("stats", cid, stream=False, one_shot=True),
                                           self.usage_stats_timeout)
            counters = counters_from_stats(stats)
            if counters is None:
                return
            allocation = await self._db(lambda s: (s.get(KernelSession, sid).allocation or {}))
            util, mem = await asyncio.get_running_loop().run_in_executor(
                None, device_figures, self.accelerators, allocation)
            self._usage_final = Counters(**{**counters.__dict__, "accel_util": util, "accel_mem": mem})
        except Exception as e:  # the engine or database being slow must not stop the stop
            self.log.warning("%s: no final usage figures of session %s: %s", self._log_name, sid, e)
