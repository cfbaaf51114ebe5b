"""Ship buffered code-log records to the service in batches: at least once, retrying with backoff.

A batch is acknowledged by a 2xx answer, and only then removed from the buffer; the service stores
each record id once, so a batch sent again after a lost answer is harmless. A refusal that no retry
can change (400, 403, 404: bad input, logging turned off, not this user's session) drops the batch
with a warning. With nothing to send, a heartbeat (an empty batch) tells the service the session is
still shipping, so that it records a gap only when shipping stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Awaitable, Callable

from .buffer import Buffer

log = logging.getLogger("backendai_hub_session")

FINAL = {400, 403, 404, 409, 413, 422}  # the service's answers that no retry changes


def final(status: int, body: bytes) -> bool:
    """A refusal by the service itself (its JSON error), not by a proxy or hub between (a 404 while
    the hub restarts and has not routed the service yet must be retried)."""
    if status not in FINAL:
        return False
    try:
        return isinstance(json.loads(body), dict) and "error" in json.loads(body)
    except ValueError:
        return False


async def tornado_post(url: str, token: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """POST with tornado's client: (status, body), status 599 when there was no answer."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    req = HTTPRequest(url, method="POST", body=body, request_timeout=timeout, follow_redirects=False,
                      headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    except Exception as e:  # noqa: BLE001 - refused, reset, DNS: all mean "try again later"
        log.debug("code log: POST %s failed: %s", url, e)
        return 599, b""
    return resp.code, resp.body or b""


class Shipper:
    def __init__(self, buffer: Buffer, url: str, token: str, session_id: int, captured_by: str, *,
                 interval: float = 2.0, heartbeat: float = 60.0, backoff_max: float = 30.0, timeout: float = 20.0,
                 post: Callable[[str, str, bytes, float], Awaitable[tuple[int, bytes]]] = tornado_post):
        self.buffer, self.url, self.token, self.session_id = buffer, url, token, session_id
        self.captured_by, self.interval, self.heartbeat = captured_by, interval, heartbeat
        self.backoff_max, self.timeout, self._post = backoff_max, timeout, post
        self._wake = asyncio.Event()
        self._last_sent = 0.0
        self.sent = self.failures = self.refused = 0

    def poke(self) -> None:
        """Something was buffered: ship soon (batches still gather for ``interval``)."""
        self._wake.set()

    def _body(self, records: list[dict]) -> bytes:
        return json.dumps({"session": self.session_id, "captured_by": self.captured_by, "records": records},
                          ensure_ascii=False).encode("utf-8")

    async def ship_once(self) -> bool | None:
        """Send the oldest segment (or a heartbeat when due). True: acknowledged; False: try again
        later; None: nothing was due."""
        item = self.buffer.oldest()
        if item is None:
            if time.monotonic() - self._last_sent < self.heartbeat:
                return None
            records, segment = [], None
        else:
            segment, records = item
        status, answer = await self._post(self.url, self.token, self._body(records), self.timeout)
        if 200 <= status < 300:
            self._last_sent = time.monotonic()
            if segment is not None:
                self.buffer.done(segment)
                self.sent += len(records)
            return True
        if final(status, answer):
            self.refused += len(records)
            log.warning("code log: the service refused %d record(s) (HTTP %d: %s); dropped", len(records), status,
                        answer[:200].decode(errors="replace"))
            if segment is not None:
                self.buffer.done(segment)
            self._last_sent = time.monotonic()
            return True
        self.failures += 1
        return False

    async def run(self) -> None:
        first = delay = min(1.0, self.backoff_max)
        while True:
            try:
                ok = await self.ship_once()
            except Exception:  # noqa: BLE001 - keep shipping whatever one attempt hit
                log.exception("code log: shipping failed")
                ok = False
            if ok is False:
                log.info("code log: the service is not answering; %d record(s) kept, retry in %.0f s",
                         self.buffer.pending(), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = first
            if ok:  # more may be waiting
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.heartbeat)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await asyncio.sleep(self.interval)  # let a burst of cells make one batch

    async def drain(self, deadline: float) -> None:
        """At shutdown: ship what is left until ``deadline`` (monotonic); what remains stays buffered."""
        while time.monotonic() < deadline and self.buffer.pending():
            if not await self.ship_once():
                return
