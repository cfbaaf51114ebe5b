"""Releasing a session: its egress rules, then its row (slots, devices) with the audit row, in one
transaction; while the database is down, retried in the background until it is back.
"""

from __future__ import annotations

import asyncio

from .. import admission as S
from ..usage import accounting as usage
from ..errors import ServiceUnavailable
from . import records
from .firewall import Firewall, FirewallError

# the tasks retrying releases until the database is back, by session id (kept referenced). One per
# session: a failed start's release waiting for the database and the hub's stop after it would
# otherwise race once it is back, and whichever came first would name why the session ended.
_retrying: dict[int, asyncio.Task] = {}


async def release(spawner, reason: str, sid: int | None, tag: str | None) -> None:
    try:
        await spawner._shell_revoke()  # [shell] the session's own keypair
    except ServiceUnavailable as e:
        spawner.log.warning("%s: could not revoke the shell keypair: %s", spawner._log_name, e.message)
    if tag is not None and spawner.firewall:
        try:
            await asyncio.get_running_loop().run_in_executor(None, Firewall().remove_session, tag)
        except FirewallError as e:
            spawner.log.warning("%s: could not remove egress rules: %s", spawner._log_name, e)
    if sid is None:
        return
    if sid in _retrying:  # released already, once the database is back: the first reason stands
        spawner._usage_final = None  # [usage] this stop's figures: never another session's
        spawner.log.info("%s: session %s is being released already (%s not recorded)", spawner._log_name, sid,
                         reason)
        return
    operation, status = records.release_operation(reason)
    final, spawner._usage_final = getattr(spawner, "_usage_final", None), None  # [usage] this stop's only

    def work(s):
        released = S.release(s, sid, reason)
        if released:
            records.append(s, spawner, operation, status, reason, sid=sid)
            # [usage] the closing sample: allocated time up to the stop, the figures taken before it
            usage.close(s, sid, final)
        return released

    try:
        released = await spawner._db(work)
    except ServiceUnavailable as e:
        # nothing is admitted while the database is down: the slots are freed once it is back
        spawner.log.warning("%s: session %s is released once the database is back (%s)", spawner._log_name, sid,
                            e.message)
        _release_later(spawner, work, sid)
        return
    if released:
        spawner.log.info("%s: released session %s (%s)", spawner._log_name, sid, reason)


def _release_later(spawner, work, sid: int) -> None:
    async def retry():
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                if await spawner._db(work):
                    spawner.log.info("%s: released session %s, the database being back", spawner._log_name, sid)
                return
            except ServiceUnavailable:
                delay = min(2 * delay, 10.0)
            except Exception:
                spawner.log.exception("%s: could not release session %s", spawner._log_name, sid)
                return

    task = asyncio.ensure_future(retry())
    _retrying[sid] = task
    task.add_done_callback(lambda _: _retrying.pop(sid, None))
