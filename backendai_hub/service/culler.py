"""Stop servers via the hub: past their keypair policy's lifetime or idle timeout, or mounting a folder
their user may no longer mount (a revoked share reaches running sessions)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .. import audit, code_logs
from ..admission import repair_usage, retire_orphan_session_keys
from ..session_ops import server_path
from ..db import Database
from ..errors import ServiceUnavailable
from ..idleness import Activity, Limits, UtilWindow, plan, warn_now
from ..models import KernelSession, SessionStatus
from ..usage.accounting import prune_samples
from ..vfolders.mounts import revoked_mounts
from .reconciler import Action, Reconciler, hub_servers, plan as reconcile_plan
from .session_probe import SessionProbe, activity_from, in_executor

log = logging.getLogger("backendai_hub.culler")

# access:servers: the culler reads sessions' kernels and terminals and shows them its warnings
# no access:servers: the service never talks to a session's server as itself (session_probe.py uses
# each server's own token), so no server its user controls ever sees a token valid for other sessions
SERVICE_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def overdue(started_at: datetime | None, last_activity: datetime | None, *, lifetime: int | None,
            idle_timeout: int | None, now: datetime) -> str | None:
    """Why a session must stop now ("max session lifetime …" / "idle …"), or None. Pure."""
    p = plan(started_at, Activity(hub=last_activity), Limits(lifetime, idle_timeout), now)
    return p.reason if p.due(now) and p.at < now else None


@dataclass(frozen=True)
class Candidate:
    """A running session some limit applies to."""

    id: int
    user: str
    server: str
    started_at: datetime | None
    container_id: str | None
    allocation: dict
    limits: Limits


class Culler:
    """Every ``interval`` seconds, and at once after a change that may revoke access (:meth:`poke`):
    stop the servers whose sessions outlived their policy or mount what their user lost."""

    def __init__(self, db: Database, hub_api_url: str, token: str, interval: float = 60, *,
                 audit_retention: timedelta | None = None, audit_export_dir: str | None = None,
                 reconciler: Reconciler | None = None, code_log_retention: float = 0, code_log_gap_after: float = 0,
                 probe: SessionProbe | None = None, warning: float = 0, util_window: float = 600,
                 util_threshold: float = 10, concurrency: int = 8, usage_retention: float = 0):
        self.db, self.api, self.token, self.interval = db, hub_api_url.rstrip("/"), token, interval
        # sessions read at once: each read waits on a server's HTTP answer, so one slow or hung session
        # must not hold up the rest, and a thousand must not open a thousand connections
        self.concurrency = max(1, int(concurrency))
        self.usage_retention = usage_retention  # [usage] days raw samples are kept (0: forever)
        # [idleness] what sessions are read from; seconds a warning precedes a stop; accelerator window
        self.probe, self.warning, self.util_window, self.util_threshold = probe, warning, util_window, util_threshold
        self._util: dict[int, UtilWindow] = {}
        self._warned: dict[int, tuple[datetime, str, datetime]] = {}  # session -> (stop shown, reason, when)
        # session -> when a kernel was last seen executing: a server too loaded to answer (its kernel
        # list unread, 10 s timeout) counts as active from then on, not as having no busy kernel
        self._busy_seen: dict[int, datetime] = {}
        self.reconciler = reconciler
        self.audit_retention, self.audit_export_dir = audit_retention, audit_export_dir
        # [code-log] days records are kept (0: forever); seconds of silence that make a gap row (0: none)
        self.code_log_retention, self.code_log_gap_after = code_log_retention, code_log_gap_after
        self.client = AsyncHTTPClient()
        self._poked: asyncio.Event | None = None

    async def _hub(self, method: str, path: str):
        req = HTTPRequest(f"{self.api}{path}", method=method, headers={"Authorization": f"token {self.token}"},
                          request_timeout=30)
        resp = await self.client.fetch(req, raise_error=False)
        if resp.code >= 400 and resp.code != 404:
            raise HTTPClientError(resp.code, message=resp.body.decode(errors="replace")[:200])
        return json.loads(resp.body) if resp.body else None

    def _candidates(self) -> list[Candidate]:
        with self.db.session() as s:
            rows = s.scalars(select(KernelSession).where(KernelSession.status == SessionStatus.running))
            out = []
            for r in rows:
                rp = r.keypair.resource_policy
                holds = any((r.allocation or {}).get("devices", {}).values())
                limits = Limits(rp.max_session_lifetime, rp.idle_timeout, rp.idle_timeout_accelerator, holds)
                if limits.any:
                    out.append(Candidate(r.id, r.user.username, r.server_name, r.started_at, r.container_id,
                                         dict(r.allocation or {}), limits))
            return out

    def _note(self, session_id: int, user: str, server: str, reason: str) -> None:
        with self.db.session() as s:
            row = s.get(KernelSession, session_id)
            if row is not None and row.status == SessionStatus.running:
                row.status_info = f"stopping: {reason}"
            audit.append(s, audit.SERVICE, audit.Event(
                "session", "cull", f"cull server {user}/{server}", entity_id=f"{user}/{server}#{session_id}",
                description=reason, domain=row.user.domain.name if row is not None else None))

    def _revoked(self) -> list[tuple[int, str, str, str]]:
        with self.db.session(readonly=True) as s:
            return [(r.session_id, r.username, r.server_name, r.reason) for r in revoked_mounts(s)
                    if not (s.get(KernelSession, r.session_id).status_info or "").startswith("stopping:")]

    async def _stop(self, sid: int, user: str, server: str, reason: str) -> None:
        log.info("Stopping %s/%s: %s", user, server, reason)
        await asyncio.get_running_loop().run_in_executor(None, self._note, sid, user, server, reason)
        await self._hub("DELETE", server_path(user, server))

    async def revoke(self) -> list[tuple[str, str, str]]:
        """Stop every live session that mounts a folder its user may no longer mount (as mounted)."""
        stopped = []
        for sid, user, server, reason in await asyncio.get_running_loop().run_in_executor(None, self._revoked):
            await self._stop(sid, user, server, reason)
            stopped.append((user, server, reason))
        return stopped

    def poke(self) -> None:
        """Something that may revoke access changed: run a pass now instead of at the next interval."""
        if self._poked is not None:
            self._poked.set()

    def _code_logs(self, now: datetime) -> None:
        """[code-log] the retention cut and the gap rows of logged sessions that stopped shipping."""
        with self.db.session() as s:
            if self.code_log_retention > 0:
                before = now - timedelta(days=self.code_log_retention)
                n = code_logs.prune(s, before)
                if n:
                    audit.append(s, audit.SERVICE, audit.Event(
                        "code-log", "prune", "code-log retention",
                        description=f"{n} record(s) received before {before.isoformat()}"))
                    log.info("code log: pruned %d record(s) older than %g day(s)", n, self.code_log_retention)
            if self.code_log_gap_after > 0:
                for sid in code_logs.record_gaps(s, silence=timedelta(seconds=self.code_log_gap_after), now=now):
                    log.warning("code log: session %d shipped nothing for %g s: gap recorded", sid,
                                self.code_log_gap_after)

    def prune_usage(self, now: datetime | None = None) -> int:
        """[usage] Apply the raw samples' retention (the rollups stay); returns how many went."""
        if self.usage_retention <= 0:
            return 0
        before = (now or datetime.now(timezone.utc)) - timedelta(days=self.usage_retention)
        with self.db.session() as s:
            gone = prune_samples(s, before)
        if gone:
            log.info("usage: %d raw sample(s) older than %s deleted", gone, before.isoformat())
        return gone

    def _repair_usage(self) -> None:
        with self.db.session() as s:
            for line in repair_usage(s):
                log.warning("level usage repaired: %s", line)
            for key in retire_orphan_session_keys(s):
                log.warning("session keypair %s retired: its session ended without taking it along", key)

    def prune_audit(self, now: datetime | None = None) -> int:
        """Apply the audit log's retention: rows older than it go (exported first when configured)."""
        if self.audit_retention is None:
            return 0
        before = (now or datetime.now(timezone.utc)) - self.audit_retention
        export = None
        if self.audit_export_dir:
            def export(rows):
                rows = list(rows)
                path = Path(self.audit_export_dir) / f"audit-{rows[0].seq}-{rows[-1].seq}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "x", encoding="utf-8") as f:
                    f.writelines(audit.export_lines(rows))
        with self.db.session() as s:
            gone = audit.prune(s, audit.SERVICE, before, export=export)
        if gone:
            log.info("audit log: %d row(s) older than %s deleted", gone, before.isoformat())
        return gone

    async def active_users(self) -> list[dict]:
        """The hub's models of every user with an active server, servers included (one paged listing)."""
        users, offset = [], 0
        while True:  # the hub pages GET /users (200 a page by default)
            page = await self._hub("GET", f"/users?state=active&offset={offset}&limit=200") or []
            users += page
            offset += len(page)
            if len(page) < 200:
                return users

    async def reconcile(self, now: datetime | None = None, users: list[dict] | None = None) -> list[Action]:
        """Make the engine's containers, the sessions table and the hub's servers agree (reconciler.py)."""
        r = self.reconciler
        if r is None:
            return []
        loop = asyncio.get_running_loop()
        hub = hub_servers(users if users is not None else await self.active_users())
        rows = await loop.run_in_executor(None, r.rows)
        containers = await loop.run_in_executor(None, r.containers)
        actions = reconcile_plan(rows, containers, hub, now=now or datetime.now(timezone.utc), grace=r.grace)
        for a in actions:
            log.warning("%s %s/%s: %s", a.kind, a.user, a.server, a.reason)
            if a.container_id and a.kind in ("release", "remove-container"):
                await loop.run_in_executor(None, r.remove_container, a.container_id, a.session_id)
            if a.kind == "release":
                await loop.run_in_executor(None, r.release, a)
                continue
            if a.kind == "stop-server":
                await self._hub("DELETE", server_path(a.user, a.server))
            await loop.run_in_executor(None, r.record, a)
        return actions

    async def run_once(self, now: datetime | None = None) -> list[tuple[str, str, str]]:
        """One pass; returns (user, server, reason) for each server it stopped. Also recounts the
        per-level usage admission reads, should anything have changed sessions behind its back."""
        now = now or datetime.now(timezone.utc)
        loop = asyncio.get_running_loop()
        users = await self.active_users() if self.reconciler is not None else None
        await self.reconcile(now, users)
        await loop.run_in_executor(None, self._repair_usage)
        await loop.run_in_executor(None, self.prune_audit, now)
        await loop.run_in_executor(None, self._code_logs, now)
        await loop.run_in_executor(None, self.prune_usage, now)
        stopped = await self.revoke()
        candidates = await loop.run_in_executor(None, self._candidates)
        live = {c.id for c in candidates}
        for gone in [k for k in (*self._util, *self._warned, *self._busy_seen) if k not in live]:
            self._util.pop(gone, None)
            self._warned.pop(gone, None)
            self._busy_seen.pop(gone, None)
        if candidates and users is None:
            users = await self.active_users()
        servers = {(u.get("name"), name): spec for u in users or () for name, spec in (u.get("servers") or {}).items()}
        gate = asyncio.Semaphore(self.concurrency)

        async def cull(c: Candidate) -> tuple[str, str, str] | None:
            spec = servers.get((c.user, c.server))
            if not spec or spec.get("pending") or not spec.get("ready"):
                return None  # a server still starting or stopping is the hub's to finish
            async with gate:
                try:
                    reason = await self._judge(c, _parse_time(spec.get("last_activity")), now)
                    if reason is not None:
                        await self._stop(c.id, c.user, c.server, reason)
                        return (c.user, c.server, reason)
                except ServiceUnavailable:
                    raise  # the database is down: the whole pass waits for the next round
                except Exception:  # one session's odd answer must not stop the culling of the others
                    log.exception("Culling %s/%s failed; the others go on", c.user, c.server)
            return None

        results = await asyncio.gather(*(cull(c) for c in candidates), return_exceptions=True)
        for res in results:  # every session had its turn; a database outage still ends the pass
            if isinstance(res, BaseException):
                raise res
        stopped += [res for res in results if res is not None]
        return stopped

    async def _judge(self, c: Candidate, hub_last: datetime | None, now: datetime) -> str | None:
        """Read the session's activity, warn it of a coming stop (or that it is off), and say why it
        must stop now (None: not now). A stop comes no sooner than ``warning`` seconds after its warning."""
        base, kernels, terminals, accel = None, None, None, None
        if self.probe is not None:
            base = await in_executor(self.probe.base_url, c.container_id)
            kernels, terminals = await self.probe.server_state(base)
            util = await in_executor(self.probe.utilisation, c.allocation)
            if util is not None:
                window = self._util.setdefault(c.id, UtilWindow(self.util_window, self.util_threshold))
                window.add(now, util)
                accel = window.busy_at
        act = activity_from(hub_last, kernels, terminals, accel, now)
        if act.kernel_busy:
            self._busy_seen[c.id] = now
        elif isinstance(kernels, list):
            self._busy_seen.pop(c.id, None)  # read, and nothing executes: the kernels' own times tell
        elif c.id in self._busy_seen:  # unread: active when last seen busy (idle from then, if it lasts)
            act = replace(act, kernel=max(filter(None, (act.kernel, self._busy_seen[c.id]))))
        p = plan(c.started_at, act, c.limits, now)
        warned = self._warned.get(c.id)
        if self.warning <= 0:
            return self._why(p, act, now) if p.due(now) else None
        if warned and p.due(now) and now >= warned[0]:
            self._warned.pop(c.id, None)
            return self._why(p, act, now)
        if warn_now(p, now, self.warning):
            since = warned[2] if warned else now
            shown = max(p.at, since + timedelta(seconds=self.warning))
            if not warned or (warned[0], warned[1]) != (shown, p.reason):
                log.info("Warning %s/%s: stop planned at %s: %s", c.user, c.server, shown.isoformat(), p.reason)
                if self.probe is not None:
                    await self.probe.warn(base, shown, p.reason)
                self._warned[c.id] = (shown, p.reason, since)
        elif warned:  # active again, or the policy changed: the stop is off
            log.info("Stop of %s/%s called off", c.user, c.server)
            if self.probe is not None:
                await self.probe.warn(base, None, None)
            self._warned.pop(c.id, None)
        return None

    @staticmethod
    def _why(p, act: Activity, now: datetime) -> str:
        """The reason recorded with the stop: the rule, and for idleness what the culler last saw."""
        if not p.reason.startswith("idle"):
            return p.reason
        last = act.last(now)
        seen = [f"last activity {last.isoformat(timespec='seconds') if last else 'never'}"]
        if act.terminal:
            seen.append(f"terminal {act.terminal.isoformat(timespec='seconds')}")
        if act.accelerator:
            seen.append(f"accelerators busy {act.accelerator.isoformat(timespec='seconds')}")
        return f"{p.reason} ({', '.join(seen)})"

    async def run_forever(self) -> None:
        self._poked = asyncio.Event()
        while True:
            try:
                await self.run_once()
            except ServiceUnavailable as e:  # the database is down: the next round tries again
                log.warning("Culling pass skipped: %s", e.message)
            except Exception:  # keep culling on the next round; a hub restart is not fatal here
                log.exception("Culling pass failed")
            try:
                await asyncio.wait_for(self._poked.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._poked.clear()
