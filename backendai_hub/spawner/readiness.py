"""Waiting in ``start()`` until the session's server listens, polled at a short fixed interval.

JupyterHub checks a started server with fully jittered exponential backoff (0.2 s doubling to 5 s),
which adds about a second per spawn after the server is already listening. ``start()`` returns only
once the server's port accepts connections, so the hub's first check (made at once) passes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from tornado import web
from traitlets import Float, HasTraits


class ServerNotListening(RuntimeError):
    """The session's server did not listen in time."""


class ServerExited(ServerNotListening):
    """The session's container exited before its server listened."""


async def port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted within ``timeout`` seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def wait_listening(host: str, port: int, *, timeout: float, interval: float,
                         exited: Callable[[], Awaitable[object]], fast_for: float = 2.0,
                         max_interval: float = 0.5, first_check: float = 1.0, max_check: float = 8.0) -> float:
    """Poll ``host:port`` until it accepts a connection; the seconds it took.

    Every ``interval`` s for the first ``fast_for`` s (a server usually listens within a second), then
    half as often again each poll up to ``max_interval``: in a burst, when servers boot for many
    seconds on shared cores, twenty spawns polling at full rate would cost the hub the CPU they wait for.
    ``exited()`` (the container's exit status, None while it runs) is asked after ``first_check`` s,
    then at doubling gaps up to ``max_check`` s, so a server that dies is reported soon, while a burst's
    status checks do not queue in front of other spawns' container creates on the engine's executor.
    """
    started = time.monotonic()
    deadline = started + timeout
    check_gap = first_check
    next_check = started + check_gap
    while True:
        if await port_accepts(host, port, timeout=min(1.0, max(0.05, deadline - time.monotonic()))):
            return time.monotonic() - started
        now = time.monotonic()
        if now >= next_check:
            check_gap = min(check_gap * 2, max_check)
            next_check = now + check_gap
            status = await exited()
            if status is not None:
                raise ServerExited(f"the session's server exited ({status}) before it listened")
        if now >= deadline:
            raise ServerNotListening(f"the session's server did not listen on port {port} within {timeout:g} s")
        if now - started > fast_for:
            interval = min(interval * 1.5, max(max_interval, interval))
        await asyncio.sleep(interval)


class ReadinessMixin(HasTraits):
    """The spawner's part: ``start()`` awaits :meth:`wait_until_listening` before it returns."""

    ready_poll_interval = Float(
        0.05, help="Seconds between start()'s checks that the session's server listens (0 leaves the "
                   "wait to JupyterHub's own readiness check, which backs off with jitter to 5 s).",
    ).tag(config=True)

    async def wait_until_listening(self, ip: str, port: int) -> None:
        """Return once the server accepts connections; raise if its container exits first.

        Waits at most ``http_timeout``; a server still silent then is left to the hub's own check,
        which gives up after ``http_timeout`` and stops it, as without this wait.
        """
        if self.ready_poll_interval <= 0:
            return
        try:
            took = await wait_listening(ip, port, timeout=self.http_timeout, interval=self.ready_poll_interval,
                                        exited=self.container_status)
        except ServerExited as e:
            raise web.HTTPError(500, str(e)) from None
        except ServerNotListening as e:
            self.log.warning("%s: %s; leaving it to the hub's check", self._log_name, e)
            return
        self.log.info("%s: the server listens (%.2f s after its container started)", self._log_name, took)
