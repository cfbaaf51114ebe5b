"""A small Shiny client speaking Shiny's websocket protocol as shiny.js does (JSON ``init``, then ``update`` of
inputs; the server answers with ``values`` of outputs): drives the bundled echo app (input ``msg``, output
``echo``) in tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
import time


class ShinyEcho:
    def __init__(self, url: str, headers: dict | None = None, timeout: float = 60):
        self.url, self.headers, self.timeout = url, dict(headers or {}), timeout
        self.ws = None

    async def connect(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        self.ws = await asyncio.wait_for(websocket_connect(HTTPRequest(self.url, headers=self.headers)), self.timeout)
        # as shiny.js does: the output is visible (a hidden one is suspended and never sent)
        await self.ws.write_message(json.dumps({"method": "init", "data": {
            "msg": "", ".clientdata_url_search": "", ".clientdata_output_echo_hidden": False}}))
        await self._until("echo:")

    async def _until(self, text: str) -> None:
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), self.timeout)
            if raw is None:
                raise ConnectionError("the Shiny websocket closed")
            if isinstance(raw, bytes):
                continue
            m = json.loads(raw)
            if isinstance(m, dict) and (m.get("values") or {}).get("echo") == text:
                return

    async def echo(self, text: str) -> int:
        """One round trip in ns: an input update sent, until the app's output with it comes back."""
        t0 = time.perf_counter_ns()
        await self.ws.write_message(json.dumps({"method": "update", "data": {"msg": text}}))
        await self._until(f"echo:{text}")
        return time.perf_counter_ns() - t0

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
