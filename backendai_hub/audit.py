"""The audit log: one hash-chained row per change, sign-in and session event, wherever it came from.

Every row carries ``prev_hash``, the ``hash`` of the row before it (by ``seq``), and its own ``hash``
over its fields and ``prev_hash``. Editing, inserting or deleting a row by hand breaks the chain, and
:func:`verify` names the first row where it breaks.

Writers append in the transaction of the change they record (:func:`append`), so a change that
rolls back takes its row with it; the caller then records the failure in a transaction of its own.
Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock taken just before the
row is written (the lock is held only from there to the commit), on SQLite by the write lock every
writing transaction holds (``BEGIN IMMEDIATE``). ``seq`` is unique besides: two writers that both
read the same last row cannot both commit, so the chain never forks.

A retention cut (:func:`prune`) deletes the oldest rows and appends a row whose ``entity_id``
anchors the cut (``before:<seq>:<hash of the row before seq>``), so what remains still verifies.
Descriptions are reasons and names, never request bodies: no secret reaches this table.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import Select, bindparam, delete, func, or_, select, text
from sqlalchemy.orm import Session

from .errors import TenancyError
from .models import AuditLog, AuditStatus, UTCDateTime, utcnow

GENESIS = "0" * 64
ADVISORY_LOCK = 0x42414941  # "BAIA"
PRUNE_ENTITY = "audit-log"
MAX_DESCRIPTION = 2000

SOURCES = ("rest", "backendai", "cli", "fixtures", "hub", "service")

# the columns a row's hash covers, in order (``seq`` and ``prev_hash`` included)
HASHED = ("seq", "created_at", "actor", "credential", "acted_as", "domain", "client_address", "source",
          "entity_type", "entity_id", "operation", "action", "request_id", "status", "description",
          "duration_us", "prev_hash")
_LIMITS = {"actor": 64, "credential": 64, "acted_as": 64, "domain": 64, "client_address": 64, "source": 16,
           "entity_type": 32, "entity_id": 255, "operation": 32, "action": 128, "request_id": 64,
           "description": MAX_DESCRIPTION}


@dataclass(frozen=True)
class Actor:
    """Who acted, how they proved it and from where; ``user`` None is the system itself."""

    user: str | None
    source: str
    credential: str = ""
    domain: str | None = None
    acted_as: str | None = None
    client_address: str | None = None
    request_id: str | None = None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"audit source {self.source!r}: one of {SOURCES}")


def local_actor(source: str = "cli") -> Actor:
    """The operator of a command run on the database itself (no hub credential: the OS account)."""
    try:
        who = os.getlogin()
    except OSError:
        import pwd

        who = pwd.getpwuid(os.getuid()).pw_name
    return Actor(user=None, source=source, credential=f"local:{who}")


HUB = Actor(user=None, source="hub", credential="hub")
SERVICE = Actor(user=None, source="service", credential="service")


@dataclass
class Event:
    """What happened to what: filled in by the caller, written by :func:`append`."""

    entity_type: str
    operation: str
    action: str
    entity_id: str | None = None
    status: AuditStatus = AuditStatus.success
    description: str = ""
    domain: str | None = None  # the entity's domain, when the actor's is not the one that matters
    started: float = field(default_factory=time.perf_counter)

    def failed(self, exc: BaseException) -> "Event":
        """This event as the failure ``exc`` made of it: refused by a rule (4xx) or an error."""
        status, reason = outcome(exc)
        return replace(self, status=status, description=reason)


def outcome(exc: BaseException) -> tuple[AuditStatus, str]:
    code = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(code, int) and 400 <= code < 500:
        reason = getattr(exc, "message", None) or getattr(exc, "log_message", None) or str(exc)
        return AuditStatus.rejected, str(reason)
    if isinstance(exc, TenancyError):
        return AuditStatus.error, exc.message
    return AuditStatus.error, type(exc).__name__  # an unexpected fault: its kind, not its text


def row_hash(values: dict[str, Any]) -> str:
    def norm(v):
        if isinstance(v, datetime):
            return v.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if isinstance(v, AuditStatus):
            return v.value
        return v

    body = json.dumps([norm(values[k]) for k in HASHED], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _clip(name: str, value):
    limit = _LIMITS.get(name)
    if limit is not None and isinstance(value, str) and len(value) > limit:
        return value[:limit - 1] + "…"
    return value


def _lock(s: Session) -> None:
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK})
    # SQLite: this transaction already holds the database's write lock (BEGIN IMMEDIATE)


_LAST = text("SELECT seq, hash FROM audit_logs ORDER BY seq DESC LIMIT 1")
_INSERT = text(
    "INSERT INTO audit_logs (" + ", ".join(HASHED + ("hash",)) + ") VALUES ("
    + ", ".join(f":{c}" for c in HASHED + ("hash",)) + ")"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


def append(s: Session, actor: Actor, event: Event, *, now: datetime | None = None) -> dict:
    """Write ``event`` as the next row of the chain, in ``s``'s (writing) transaction; its values."""
    _lock(s)
    last = s.connection().execute(_LAST).first()
    values = {
        "seq": (last.seq + 1) if last else 1,
        "created_at": (now or utcnow()).astimezone(timezone.utc),
        "actor": actor.user, "credential": actor.credential or "", "acted_as": actor.acted_as,
        "domain": event.domain if event.domain is not None else actor.domain,
        "client_address": actor.client_address, "source": actor.source,
        "entity_type": event.entity_type, "entity_id": event.entity_id, "operation": event.operation,
        "action": event.action, "request_id": actor.request_id, "status": AuditStatus(event.status),
        "description": event.description or "",
        "duration_us": max(0, int((time.perf_counter() - event.started) * 1e6)),
        "prev_hash": last.hash if last else GENESIS,
    }
    values = {k: _clip(k, v) for k, v in values.items()}
    values["hash"] = row_hash(values)
    # one plain statement (not the ORM's unit of work): this runs in every writing transaction
    s.connection().execute(_INSERT, {**values, "status": values["status"].value})
    return values


def record(db, actor: Actor, event: Event) -> None:
    """Append ``event`` in a transaction of its own (a failure whose own transaction rolled back)."""
    with db.session() as s:
        append(s, actor, event)


def audited(db, actor: Actor, event: Event, work: Callable[[Session], Any]) -> Any:
    """Run ``work(s)`` in one transaction that also records ``event``; a failure is recorded apart."""
    try:
        with db.session() as s:
            result = work(s)
            append(s, actor, event)
            return result
    except Exception as e:
        record(db, actor, event.failed(e))
        raise


# -- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    actor: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    operation: str | None = None
    status: AuditStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    # what the reader may see: rows in one of ``domains`` or by one of ``actors`` (both None: every row)
    domains: frozenset[str] | None = None
    actors: frozenset[str] | None = None


def _filtered(q: Query) -> Select:
    stmt = select(AuditLog)
    for col, value in ((AuditLog.actor, q.actor), (AuditLog.entity_type, q.entity_type),
                       (AuditLog.entity_id, q.entity_id), (AuditLog.operation, q.operation),
                       (AuditLog.status, q.status)):
        if value is not None:
            stmt = stmt.where(col == value)
    if q.since is not None:
        stmt = stmt.where(AuditLog.created_at >= q.since)
    if q.until is not None:
        stmt = stmt.where(AuditLog.created_at < q.until)
    if q.text:
        like = "%" + q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(*(c.ilike(like, escape="\\") for c in (
            AuditLog.description, AuditLog.action, AuditLog.entity_id, AuditLog.actor))))
    visible = [col.in_(sorted(names)) for col, names in ((AuditLog.domain, q.domains), (AuditLog.actor, q.actors))
               if names is not None]
    if visible:
        stmt = stmt.where(or_(*visible))
    return stmt


def search(s: Session, q: Query, limit: int, offset: int) -> tuple[list[AuditLog], int]:
    stmt = _filtered(q)
    total = s.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = s.scalars(stmt.order_by(AuditLog.seq.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total or 0)


def search_one(s: Session, q: Query, row_id: int) -> bool:
    """Whether the row ``row_id`` is among those ``q`` selects."""
    return s.scalar(select(func.count()).select_from(_filtered(q).where(AuditLog.id == row_id).subquery())) == 1


def iter_rows(s: Session, q: Query = Query(), batch: int = 1000) -> Iterator[AuditLog]:
    """Every matching row in chain order, a batch at a time (export)."""
    after = 0
    while True:
        rows = s.scalars(_filtered(q).where(AuditLog.seq > after).order_by(AuditLog.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def to_dict(row: AuditLog) -> dict:
    return {
        "id": row.id, "seq": row.seq, "created_at": row.created_at.isoformat(), "actor": row.actor,
        "credential": row.credential, "acted_as": row.acted_as, "domain": row.domain,
        "client_address": row.client_address, "source": row.source, "entity_type": row.entity_type,
        "entity_id": row.entity_id, "operation": row.operation, "action": row.action,
        "request_id": row.request_id, "status": row.status.value, "description": row.description,
        "duration_ms": round(row.duration_us / 1000, 3), "prev_hash": row.prev_hash, "hash": row.hash,
    }


# -- verifying and retention --------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    first_seq: int | None = None
    last_seq: int | None = None
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("ok", "checked", "first_seq", "last_seq", "broken_seq",
                                               "broken_id", "reason")}


def _anchor(s: Session, first_seq: int) -> str | None:
    """The hash a retention cut recorded for the row before ``first_seq`` (None: no such cut)."""
    ids = s.scalars(select(AuditLog.entity_id).where(
        AuditLog.entity_type == PRUNE_ENTITY, AuditLog.operation == "prune",
        AuditLog.status == AuditStatus.success,
        AuditLog.entity_id.like(f"before:{first_seq}:%"))).all()
    for entity_id in ids:
        _, seq, digest = entity_id.split(":", 2)
        if int(seq) == first_seq:
            return digest
    return None


def verify(s: Session, batch: int = 2000) -> Verdict:
    """Walk the chain from its first row; the first row that does not fit is named."""
    checked, prev, expected_seq, first = 0, None, None, None
    after = None
    while True:
        stmt = select(AuditLog).order_by(AuditLog.seq).limit(batch)
        if after is not None:
            stmt = stmt.where(AuditLog.seq > after)
        rows = s.scalars(stmt).all()
        if not rows:
            break
        for row in rows:
            values = {k: getattr(row, k) for k in HASHED}
            if first is None:
                first = row.seq
                start = GENESIS if row.seq == 1 else _anchor(s, row.seq)
                if start is None:
                    return Verdict(False, checked, first, None, row.seq, row.id,
                                   f"the chain starts at seq {row.seq} but no retention cut before it is recorded")
                if row.prev_hash != start:
                    return Verdict(False, checked, first, None, row.seq, row.id,
                                   "prev_hash does not match the start of the chain")
            elif row.seq != expected_seq:
                return Verdict(False, checked, first, None, row.seq, row.id,
                               f"seq {expected_seq} is missing (rows deleted or renumbered)")
            elif row.prev_hash != prev:
                return Verdict(False, checked, first, None, row.seq, row.id,
                               "prev_hash is not the hash of the row before it")
            if row_hash(values) != row.hash:
                return Verdict(False, checked, first, None, row.seq, row.id,
                               "the row's contents do not match its hash (edited)")
            prev, expected_seq, checked = row.hash, row.seq + 1, checked + 1
        after = rows[-1].seq
    return Verdict(True, checked, first, expected_seq - 1 if expected_seq else None)


def prune(s: Session, actor: Actor, before: datetime,
          export: Callable[[Iterable[AuditLog]], None] | None = None) -> int:
    """Delete the rows older than ``before`` (after handing them to ``export``); the cut is recorded.

    The newest row always stays, and the chain stays verifiable: the row appended here anchors the
    hash of the last deleted row.
    """
    event = Event(PRUNE_ENTITY, "prune", "audit prune", description=f"rows created before {before.isoformat()}")
    _lock(s)
    newest = s.scalar(select(func.max(AuditLog.seq)))
    if newest is None:
        return 0
    # the oldest prefix of the chain created before ``before`` (the chain is cut at one place; a
    # row older than a newer one before it, from a skewed clock, waits for the next cut)
    first_kept = s.scalar(select(func.min(AuditLog.seq)).where(AuditLog.created_at >= before))
    cut = min(newest, first_kept if first_kept is not None else newest) - 1
    first = s.scalar(select(func.min(AuditLog.seq)))
    if cut < first:
        return 0
    if export is not None:
        export(row for row in iter_rows(s) if row.seq <= cut)
    last_hash = s.scalar(select(AuditLog.hash).where(AuditLog.seq == cut))
    gone = s.execute(delete(AuditLog).where(AuditLog.seq <= cut)).rowcount
    event.entity_id = f"before:{cut + 1}:{last_hash}"
    event.description += f": {gone} row(s) up to seq {cut}"
    append(s, actor, event)
    return int(gone or 0)


def export_lines(rows: Iterable[AuditLog]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(to_dict(row), ensure_ascii=False, sort_keys=True) + "\n"
