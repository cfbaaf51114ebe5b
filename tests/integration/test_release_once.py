"""A session released while the database is down is released once it is back, for the first reason given:
a failed start's release waiting for the database, then the hub's stop after it, do not race (real SQLite)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from types import SimpleNamespace

from backendai_hub import admission as S
from backendai_hub.errors import ServiceUnavailable
from backendai_hub.models import KernelSession
from backendai_hub.spawner import releasing
from tests.conftest import database_with
from tests.integration.service_harness import TENANCY

db = database_with(TENANCY)


class Spawner:
    """What ``releasing.release`` uses of the spawner; its database is down until ``up`` is set."""

    def __init__(self, database, sid: int):
        self.database, self.session_id, self.up = database, sid, False
        self.user, self.name, self._charge = SimpleNamespace(name="alice"), "", None
        self.log, self._log_name, self.firewall = logging.getLogger("test"), "alice", None
        self.calls = 0

    async def _shell_revoke(self):
        return None

    async def _db(self, work):
        self.calls += 1
        if not self.up:
            raise ServiceUnavailable("the database is unavailable (test)", retry_after=1)
        with self.database.session() as s:
            return work(s)


async def test_the_first_reason_stands_when_both_wait_for_the_database(db):
    with db.session() as s:
        sid = S.admit(s, S.resolve(s, "alice"), server_name="", image="img", app="jupyterlab",
                      request={"cpu": Decimal(1)}).id
    spawner = Spawner(db, sid)
    await releasing.release(spawner, "failed to start", sid, None)  # the database is down: retried later
    calls = spawner.calls
    spawner.up = True  # back, before the first retry fires: the stop's release would get there first
    spawner._usage_final = object()  # the stop's closing figures, taken before the container went
    await releasing.release(spawner, "stopped", sid, None)
    assert spawner.calls == calls  # it left the release to the one waiting
    assert spawner._usage_final is None  # and no later session of this spawner closes with its figures
    for _ in range(100):
        if sid not in releasing._retrying:
            break
        await asyncio.sleep(0.05)
    with db.session(readonly=True) as s:
        row = s.get(KernelSession, sid)
        assert (row.status.value, row.status_info) == ("terminated", "failed to start")
        assert S.stored_usage(s) == S.counted_usage(s)
    assert sid not in releasing._retrying
    # and a release after that one is done is a release again (here: nothing left to free)
    await releasing.release(spawner, "stopped", sid, None)
    assert spawner.calls == calls + 2
