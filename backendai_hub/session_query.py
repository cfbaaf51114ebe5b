"""Finding sessions: filters parsed once, one query for the REST list, the CLI and the GraphQL list.

A session is a hub server; its Backend.AI *name* is the server's name, ``default`` for the default
server (``""``), and its Backend.AI *id* a UUID that encodes the row's id (:func:`session_uuid`), so the
official client's ``session info <uuid>`` finds the row without another column.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, joinedload

from . import validation as V
from .admission import session_to_dict
from .errors import InvalidInput, NotFound
from .models import Domain, Group, KernelSession, SessionStatus, User

DEFAULT_NAME = "default"  # the Backend.AI name of a user's default server ("")
# live: queued, starting or running; all: any
STATUS_WORDS = ("queued", "starting", "running", "terminated", "live", "all")
_LIVE = (SessionStatus.queued, SessionStatus.starting, SessionStatus.running)
# our statuses as Backend.AI's (ai.backend.manager's SessionStatus names), and back
BAI_STATUS = {"queued": "PENDING", "starting": "PREPARING", "running": "RUNNING", "terminated": "TERMINATED"}
BAI_STATUSES = ("PENDING", "SCHEDULED", "PULLING", "PREPARING", "RUNNING", "RESTARTING", "RUNNING_DEGRADED",
                "TERMINATING", "TERMINATED", "ERROR", "CANCELLED")
_UUID_PREFIX = "5e551000-0000-4000-8000-"  # + the row id in 12 hex digits
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def session_name(server_name: str) -> str:
    return server_name or DEFAULT_NAME


def session_uuid(session_id: int) -> str:
    return f"{_UUID_PREFIX}{session_id:012x}"


def id_from_ref(ref: str, field: str = "session_id") -> int | None:
    """A row id from ``ref``: the id itself or its UUID; None when ``ref`` is neither (perhaps a name)."""
    if ref.isascii() and ref.isdigit():
        return V.integer(ref, field)  # past 64 bits: a 400 naming the field
    try:
        text = str(uuid.UUID(ref))
    except ValueError:
        return None
    return int(text[len(_UUID_PREFIX):], 16) if text.startswith(_UUID_PREFIX) else 0  # 0: no such row


def older_than(value: Any, field: str, now: datetime | None = None) -> datetime:
    """A duration (``90s``, ``30m``, ``2h``, ``7d``, ``1w``) back from now, or an ISO 8601 date or date-time."""
    if isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        try:
            return (now or datetime.now(timezone.utc)) - timedelta(seconds=int(m[1]) * _UNITS[m[2]])
        except OverflowError:
            raise InvalidInput(f"{field}: {value!r} reaches back past the year 1", field=field) from None
    if not isinstance(value, str) or not value[:1].isdigit() or len(value) < 8:
        raise InvalidInput(f"{field}: {str(value)[:40]!r} is not a duration (30m, 2h, 7d) nor an ISO 8601 "
                           "date or date-time", field=field)
    return V.timestamp(value, field)


@dataclass(frozen=True)
class Scope:
    """Whose sessions a caller may see: every one, those of some domains, and their own."""

    everything: bool = False
    domains: frozenset[str] = field(default_factory=frozenset)
    username: str | None = None


@dataclass(frozen=True)
class Filters:
    user: str | None = None
    domain: str | None = None
    group: str | None = None
    status: tuple[SessionStatus, ...] = ()  # empty: any
    image: str | None = None
    accelerators: bool | None = None  # True: holding accelerator devices; False: holding none
    older_than: datetime | None = None  # created before
    access_key: str | None = None
    name: str | None = None  # the Backend.AI name (server name, "default")


FILTER_FIELDS = ("user", "domain", "group", "status", "image", "accelerators", "older_than", "access_key")


def parse_filters(raw: Mapping[str, Any], *, now: datetime | None = None) -> Filters:
    """The filters of a query string or CLI (strings; absent or empty: no filter); 400 names the field."""
    got = {k: v for k, v in raw.items() if v not in (None, "")}
    out: dict[str, Any] = {}
    for k in ("user", "domain", "group", "image", "access_key"):
        if k in got:
            out[k] = V.text(got[k], k, max_len=255)
    if "status" in got:
        words = [w.strip().lower() for w in V.text(got["status"], "status", 200).split(",") if w.strip()]
        statuses: list[SessionStatus] = []
        for w in words:
            if w not in STATUS_WORDS:
                raise InvalidInput(f"status: {w!r} is not one of {', '.join(STATUS_WORDS)}", field="status")
            statuses += _LIVE if w == "live" else list(SessionStatus) if w == "all" else [SessionStatus(w)]
        out["status"] = () if "all" in words else tuple(dict.fromkeys(statuses))
    if "accelerators" in got:
        value = got["accelerators"]
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            value = value.lower() in ("true", "yes", "1")
        out["accelerators"] = V.boolean(value, "accelerators")
    if "older_than" in got:
        out["older_than"] = older_than(got["older_than"], "older_than", now)
    return Filters(**out)


def holds_accelerators(row: KernelSession) -> bool:
    """Whether the session was given accelerator devices (any slot's device, e.g. cuda.device)."""
    return any(per for per in ((row.allocation or {}).get("devices") or {}).values())


def _statement(scope: Scope, f: Filters):
    q = select(KernelSession).join(User, KernelSession.user_id == User.id).join(
        Domain, KernelSession.domain_id == Domain.id)
    if not scope.everything:
        q = q.where(or_(Domain.name.in_(sorted(scope.domains)), User.username == scope.username)
                    if scope.domains else User.username == scope.username)
    if f.user is not None:
        q = q.where(User.username == f.user)
    if f.domain is not None:
        q = q.where(Domain.name == f.domain)
    if f.group is not None:
        q = q.join(Group, KernelSession.group_id == Group.id).where(Group.name == f.group)
    if f.status:
        q = q.where(KernelSession.status.in_(f.status))
    if f.image is not None:
        q = q.where(KernelSession.image == f.image)
    if f.older_than is not None:
        q = q.where(KernelSession.created_at < f.older_than)
    if f.access_key is not None:
        q = q.where(KernelSession.access_key == f.access_key)
    if f.name is not None:
        q = q.where(KernelSession.server_name == ("" if f.name == DEFAULT_NAME else f.name))
    return q


def find(s: Session, scope: Scope, f: Filters, limit: int, offset: int) -> tuple[list[KernelSession], int]:
    """One page of the sessions ``scope`` sees that match ``f``, newest first, and how many match."""
    q = _statement(scope, f)
    opts = (joinedload(KernelSession.user), joinedload(KernelSession.group).joinedload(Group.domain))
    if f.accelerators is None:
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        rows = s.scalars(q.options(*opts).order_by(KernelSession.id.desc()).limit(limit).offset(offset)).all()
        return list(rows), total or 0
    # which sessions were given devices is in a JSON column: read the matching rows' allocations
    matched = [r for r in s.scalars(q.options(*opts).order_by(KernelSession.id.desc()))
               if holds_accelerators(r) == f.accelerators]
    return matched[offset:offset + limit], len(matched)


def get(s: Session, scope: Scope, ref: str) -> KernelSession:
    """The session ``ref`` names (its id or UUID) that ``scope`` sees, or 404."""
    sid = id_from_ref(ref)
    row = s.get(KernelSession, sid) if sid else None
    if row is None or not visible(scope, row):
        raise NotFound(f"unknown session {ref!r}", field="session_id")
    return row


def by_name(s: Session, scope: Scope, name: str, username: str) -> KernelSession:
    """``username``'s session called ``name``, the live one, else the latest; failing that, the session
    with that id or UUID (a name comes first: JupyterHub allows a server called "42")."""
    rows, _ = find(s, scope, Filters(user=username, name=name), 1000, 0)
    if not rows and id_from_ref(name) is not None:
        return get(s, scope, name)
    live = [r for r in rows if r.status in _LIVE]
    if not (live or rows):
        raise NotFound(f"unknown session {name!r}", field="session_name")
    return (live or rows)[0]


def visible(scope: Scope, row: KernelSession) -> bool:
    return scope.everything or row.user.username == scope.username or row.group.domain.name in scope.domains


def to_dict(row: KernelSession) -> dict:
    """The REST shape: admission's, plus the Backend.AI name and id and whether it holds accelerators."""
    return {**session_to_dict(row), "name": session_name(row.server_name), "session_uuid": session_uuid(row.id),
            "accelerators": holds_accelerators(row)}
