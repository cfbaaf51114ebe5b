"""The reconciler: converge the engine's containers, our sessions table and the hub's servers.

Run by the service's periodic pass (see ``culler.Culler.run_once``), not only at hub start. What a
hub killed mid-spawn, an engine restart or a crash leaves behind is settled here:

- a live session the hub does not know (no server, nothing pending): its container is removed and
  its slots released (the hub died after admission, or after the container started);
- a live session whose server the hub has ready but whose container is gone or stopped: the hub is
  asked to stop the server, which releases the session through the spawner (the hub's view becomes
  truthful);
- a container of ours with no live session: removed;
- a server the hub has ready with no live session behind it: the hub is asked to stop it.

Nothing younger than ``grace`` is touched, nor any server the hub has pending: a session being born
(admitted, container starting, server not ready yet) is the spawner's to finish. Containers are ours
when they carry this deployment's ``ai.backend.hub.instance`` label; others are never touched.

:func:`plan` is the pure decision; :class:`Reconciler` gathers the three views and acts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping

from sqlalchemy import select

from .. import admission as S
from .. import audit
from ..db import Database, instance_id
from ..models import KernelSession, SessionStatus
from ..usage import accounting as usage
from ..spawner.names import LABEL_INSTANCE, LABEL_SERVER, LABEL_SESSION, LABEL_USER, firewall_tag

log = logging.getLogger("backendai_hub.reconciler")


@dataclass(frozen=True)
class Row:
    id: int
    user: str
    server: str
    status: str  # starting | running
    container_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class Container:
    id: str
    session_id: int | None
    user: str
    server: str
    running: bool
    created_at: datetime


@dataclass(frozen=True)
class HubServer:
    ready: bool
    pending: str | None
    started: datetime | None


@dataclass(frozen=True)
class Action:
    kind: str  # release (and remove the container, if any) | stop-server | remove-container
    user: str
    server: str
    reason: str
    session_id: int | None = None
    container_id: str | None = None


def plan(rows: Iterable[Row], containers: Iterable[Container], hub: Mapping[tuple[str, str], HubServer], *,
         now: datetime, grace: timedelta) -> list[Action]:
    """What to do so that the three views agree (see the module's docstring)."""
    rows, containers = list(rows), list(containers)
    young = now - grace
    by_id = {c.id: c for c in containers}
    by_session = {c.session_id: c for c in containers if c.session_id is not None}
    actions: list[Action] = []
    live_ids, live_servers = set(), set()
    for r in rows:
        live_ids.add(r.id)
        live_servers.add((r.user, r.server))
        server = hub.get((r.user, r.server))
        if r.created_at > young or (server is not None and server.pending):
            continue  # being born (or being stopped): the spawner's
        c = by_id.get(r.container_id) if r.container_id else by_session.get(r.id)
        if server is None or not server.ready:
            actions.append(Action("release", r.user, r.server, "reconciler: the hub has no such server",
                                  r.id, c.id if c else None))
        elif c is None or not c.running:
            actions.append(Action("stop-server", r.user, r.server,
                                  "reconciler: the session's container is " + ("gone" if c is None else "stopped"),
                                  r.id, c.id if c else None))
    for c in containers:
        if c.session_id in live_ids or c.created_at > young:
            continue
        actions.append(Action("remove-container", c.user, c.server, "reconciler: no live session has it",
                              c.session_id, c.id))
    for (user, server_name), server in hub.items():
        if server.ready and (user, server_name) not in live_servers and (server.started or now) <= young:
            actions.append(Action("stop-server", user, server_name, "reconciler: no live session behind it"))
    return actions


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def hub_servers(users: list[dict]) -> dict[tuple[str, str], HubServer]:
    """The hub's servers from ``GET /users`` (with ``read:servers``)."""
    out = {}
    for u in users or ():
        for name, spec in (u.get("servers") or {}).items():
            out[(u["name"], name)] = HubServer(bool(spec.get("ready")), spec.get("pending"),
                                               _parse(spec.get("started")))
    return out


class Reconciler:
    """Gathers the three views and carries out :func:`plan`'s actions."""

    def __init__(self, db: Database, docker_client, *, grace: timedelta, firewall=None):
        self.db, self.docker, self.grace, self.firewall = db, docker_client, grace, firewall
        self.instance = instance_id(db.url)

    def rows(self) -> list[Row]:
        with self.db.session(readonly=True) as s:
            live = s.scalars(select(KernelSession).where(KernelSession.status.in_(
                (SessionStatus.starting, SessionStatus.running))))
            return [Row(r.id, r.user.username, r.server_name, r.status.value, r.container_id, r.created_at)
                    for r in live]

    def containers(self) -> list[Container]:
        out = []
        for c in self.docker.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={self.instance}"}):
            labels = c.labels or {}
            sid = labels.get(LABEL_SESSION, "")
            out.append(Container(c.id, int(sid) if sid.isdigit() else None, labels.get(LABEL_USER, ""),
                                 labels.get(LABEL_SERVER, ""), c.status == "running",
                                 _parse(c.attrs.get("Created", "")[:26] + "+00:00") or datetime.now(timezone.utc)))
        return out

    def remove_container(self, container_id: str, session_id: int | None) -> None:
        try:
            self.docker.containers.get(container_id).remove(force=True)
        except Exception as e:  # noqa: BLE001 - gone already, or the engine refused: say so, go on
            if getattr(e, "status_code", None) != 404:
                log.warning("reconciler: could not remove container %s: %s", container_id[:12], e)
        if self.firewall is not None and session_id is not None:
            try:
                self.firewall.remove_session(firewall_tag(session_id, container_id))
            except Exception as e:  # noqa: BLE001
                log.warning("reconciler: could not remove the egress rules of %s: %s", container_id[:12], e)

    def release(self, action: Action) -> None:
        with self.db.session() as s:
            if S.release(s, action.session_id, action.reason):
                audit.append(s, audit.SERVICE, _event(action, action.reason))
                usage.close(s, action.session_id)  # [usage] allocated time up to now; the last figures stand

    def record(self, action: Action) -> None:
        with self.db.session() as s:
            audit.append(s, audit.SERVICE, _event(action, f"{action.kind}: {action.reason}"))


def _event(action: Action, description: str) -> audit.Event:
    entity = f"{action.user}/{action.server}" + (f"#{action.session_id}" if action.session_id else "")
    return audit.Event("session", "reconcile", f"reconcile server {action.user}/{action.server}",
                       entity_id=entity, description=description)
