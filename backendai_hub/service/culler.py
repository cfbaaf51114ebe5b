"""Enforce each keypair policy's max session lifetime and idle timeout by stopping servers via the hub."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from urllib.parse import quote

from sqlalchemy import select
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..db import Database
from ..models import KernelSession, SessionStatus

log = logging.getLogger("backendai_hub.culler")

SERVICE_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def overdue(started_at: datetime | None, last_activity: datetime | None, *, lifetime: int | None,
            idle_timeout: int | None, now: datetime) -> str | None:
    """Why a session must stop now ("max session lifetime …" / "idle …"), or None. Pure."""
    if lifetime and started_at and (now - started_at).total_seconds() > lifetime:
        return f"max session lifetime of {lifetime} s reached"
    reference = max(filter(None, (last_activity, started_at)), default=None)
    if idle_timeout and reference and (now - reference).total_seconds() > idle_timeout:
        return f"idle for more than {idle_timeout} s"
    return None


class Culler:
    """Every ``interval`` seconds: stop the servers whose sessions outlived their policy."""

    def __init__(self, db: Database, hub_api_url: str, token: str, interval: float = 60):
        self.db, self.api, self.token, self.interval = db, hub_api_url.rstrip("/"), token, interval
        self.client = AsyncHTTPClient()

    async def _hub(self, method: str, path: str):
        req = HTTPRequest(f"{self.api}{path}", method=method, headers={"Authorization": f"token {self.token}"},
                          request_timeout=30)
        resp = await self.client.fetch(req, raise_error=False)
        if resp.code >= 400 and resp.code != 404:
            raise HTTPClientError(resp.code, message=resp.body.decode(errors="replace")[:200])
        return json.loads(resp.body) if resp.body else None

    def _candidates(self) -> list[tuple[int, str, str, datetime | None, int | None, int | None]]:
        with self.db.session() as s:
            rows = s.scalars(select(KernelSession).where(KernelSession.status == SessionStatus.running))
            out = []
            for r in rows:
                rp = r.keypair.resource_policy
                if rp.max_session_lifetime or rp.idle_timeout:
                    out.append((r.id, r.user.username, r.server_name, r.started_at, rp.max_session_lifetime,
                                rp.idle_timeout))
            return out

    def _note(self, session_id: int, reason: str) -> None:
        with self.db.session() as s:
            row = s.get(KernelSession, session_id)
            if row is not None and row.status == SessionStatus.running:
                row.status_info = f"stopping: {reason}"

    async def run_once(self, now: datetime | None = None) -> list[tuple[str, str, str]]:
        """One pass; returns (user, server, reason) for each server it stopped."""
        now = now or datetime.now(timezone.utc)
        loop = asyncio.get_running_loop()
        stopped = []
        for sid, user, server, started_at, lifetime, idle in await loop.run_in_executor(None, self._candidates):
            model = await self._hub("GET", f"/users/{quote(user, safe='')}")
            spec = ((model or {}).get("servers") or {}).get(server)
            if not spec or spec.get("pending") or not spec.get("ready"):
                continue  # a server still starting or stopping is the hub's to finish
            reason = overdue(started_at, _parse_time(spec.get("last_activity")), lifetime=lifetime,
                             idle_timeout=idle, now=now)
            if reason is None:
                continue
            log.info("Stopping %s/%s: %s", user, server, reason)
            await loop.run_in_executor(None, self._note, sid, reason)
            path = f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}" if server else \
                f"/users/{quote(user, safe='')}/server"
            await self._hub("DELETE", path)
            stopped.append((user, server, reason))
        return stopped

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # keep culling on the next round; a hub restart is not fatal here
                log.exception("Culling pass failed")
            await asyncio.sleep(self.interval)
