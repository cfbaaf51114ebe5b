"""Code-execution log operations: ingest a session's batch (idempotent), read with reach and filters,
prune (optionally exporting first), and the gap rows of sessions that stopped shipping.

Records are captured by the session's own server (``backendai_hub_session`` in the session images),
so they are exactly as trustworthy as that server: its user can tamper with their own container.
``captured_by`` says where each record came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import validation as V
from .errors import Forbidden, InvalidInput, NotFound
from .models import (CodeLog, CodeLogKind, CodeLogStatus, CodeLogStream, Domain, Group, KernelSession, SessionStatus,
                     UserStatus, utcnow)

MAX_CODE_BYTES = 64 * 1024  # stored code is cut here (on a character boundary); size and hash cover it all
MAX_BATCH = 1000  # records in one POST
RECORD_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
INGEST_KINDS = (CodeLogKind.cell.value, CodeLogKind.terminal.value)  # gap rows are the service's own


# -- policy ------------------------------------------------------------------------------------------

def logging_on(domain: Domain, group: Group) -> bool:
    """A session records its code when its domain or its group has ``code_log`` on."""
    return bool(domain.code_log or group.code_log)


def session_logging_on(s: Session, session_id: int) -> bool:
    row = s.get(KernelSession, session_id)
    return row is not None and logging_on(row.group.domain, row.group)


# -- input ---------------------------------------------------------------------------------------------

def _opt_text(value: Any, field: str, max_len: int = 128) -> str | None:
    if value is None:
        return None
    return V.text(value, field, max_len=max_len)


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput(f"{field}: must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z", field=field)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 time", field=field) from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def cap_code(code: str) -> tuple[str, int, str, bool]:
    """(stored code, full size in bytes, SHA-256 of the full code, truncated)."""
    raw = code.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(raw).hexdigest()
    if len(raw) <= MAX_CODE_BYTES:
        return code, len(raw), digest, False
    return raw[:MAX_CODE_BYTES].decode("utf-8", "ignore"), len(raw), digest, True


@dataclass(frozen=True)
class Record:
    record_id: str
    kind: CodeLogKind
    status: CodeLogStatus
    kernel_id: str | None
    msg_id: str | None
    execution_count: int | None
    started_at: datetime | None
    ended_at: datetime | None
    code: str
    code_size: int
    code_sha256: str
    truncated: bool


RECORD_FIELDS = ("id", "kind", "status", "kernel_id", "msg_id", "execution_count", "started_at", "ended_at",
                 "code", "code_size", "code_sha256")


def parse_record(raw: Any, field: str) -> Record:
    """One record of a batch; errors name ``records[i].<field>``."""
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{field}: must be an object", field=field)
    unknown = sorted(set(raw) - set(RECORD_FIELDS))
    if unknown:
        raise InvalidInput(f"{field}.{unknown[0]}: unknown field", field=f"{field}.{unknown[0]}")
    rid = raw.get("id")
    if not isinstance(rid, str) or not RECORD_ID_RE.match(rid):
        raise InvalidInput(f"{field}.id: required, 1-128 letters, digits, '.', '_', ':', '-'", field=f"{field}.id")
    kind = raw.get("kind", "cell")
    if kind not in INGEST_KINDS:
        raise InvalidInput(f"{field}.kind: must be one of {', '.join(INGEST_KINDS)}", field=f"{field}.kind")
    status = raw.get("status", "unknown")
    if status not in CodeLogStatus.__members__:
        raise InvalidInput(f"{field}.status: must be one of {', '.join(CodeLogStatus.__members__)}",
                           field=f"{field}.status")
    code = raw.get("code", "")
    if not isinstance(code, str):
        raise InvalidInput(f"{field}.code: must be a string", field=f"{field}.code")
    stored, size, digest, truncated = cap_code(code)
    # a capturer that cut the code itself says what the whole was; nothing here can check it
    if "code_size" in raw:
        claimed = V.integer(raw["code_size"], f"{field}.code_size")
        if claimed < size:
            raise InvalidInput(f"{field}.code_size: smaller than the code sent", field=f"{field}.code_size")
        if claimed > size:
            if not isinstance(raw.get("code_sha256"), str) or not HEX64_RE.match(raw["code_sha256"]):
                raise InvalidInput(f"{field}.code_sha256: 64 lowercase hex digits, required with a larger "
                                   "code_size", field=f"{field}.code_sha256")
            size, digest, truncated = claimed, raw["code_sha256"], True
    count = raw.get("execution_count")
    return Record(
        record_id=rid, kind=CodeLogKind(kind), status=CodeLogStatus(status),
        kernel_id=_opt_text(raw.get("kernel_id"), f"{field}.kernel_id"),
        msg_id=_opt_text(raw.get("msg_id"), f"{field}.msg_id"),
        execution_count=None if count is None else V.integer(count, f"{field}.execution_count",
                                                              maximum=V.INT32_MAX),
        started_at=_time(raw.get("started_at"), f"{field}.started_at"),
        ended_at=_time(raw.get("ended_at"), f"{field}.ended_at"),
        code=stored, code_size=size, code_sha256=digest, truncated=truncated)


@dataclass(frozen=True)
class Batch:
    session_id: int
    captured_by: str
    records: list[Record]


def parse_batch(data: Any) -> Batch:
    """``{"session": <session id>, "captured_by": "...", "records": [...]}``; empty records: a heartbeat."""
    if not isinstance(data, Mapping):
        raise InvalidInput("body: must be an object", field="body")
    V.check_unknown(data, ("session", "captured_by", "records"))
    if "session" not in data:
        raise InvalidInput("session: required (the session id, $BACKENDAI_SESSION_ID)", field="session")
    sid = V.integer(data["session"], "session", minimum=1, maximum=V.INT32_MAX)
    captured_by = V.text(data.get("captured_by", ""), "captured_by", max_len=200)
    records = data.get("records", [])
    if not isinstance(records, list):
        raise InvalidInput("records: must be a list", field="records")
    if len(records) > MAX_BATCH:
        raise InvalidInput(f"records: at most {MAX_BATCH} in one batch", field="records")
    return Batch(sid, captured_by, [parse_record(r, f"records[{i}]") for i, r in enumerate(records)])


# -- ingest ----------------------------------------------------------------------------------------------

def _insert(s: Session):
    return (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(CodeLog)


def ingest(s: Session, username: str, batch: Batch, *, source: str, now: datetime | None = None) -> dict:
    """Store a session's records once each (redelivery is ignored); refused unless ``username`` owns
    the session and its domain or group has ``code_log`` on. ``source`` says who delivered it."""
    now = now or utcnow()
    row = s.get(KernelSession, batch.session_id)
    if row is None or row.user.username != username:
        # another user's session looks like no session at all
        raise NotFound(f"session: no session {batch.session_id} of user {username!r}", field="session")
    user = row.user
    if user.status != UserStatus.active or not user.domain.is_active:
        raise Forbidden(f"user {username!r} or their domain is inactive")
    group, domain = row.group, row.group.domain
    if not logging_on(domain, group):
        raise Forbidden(f"code_log is off for domain {domain.name!r} and group {group.name!r}: records refused")
    # what the session says of itself, and what the service saw: the peer it came from
    captured_by = f"{batch.captured_by or 'an unnamed capturer'} ({source})"[:255]
    stored = 0
    if batch.records:
        values = [dict(received_at=now, username=username, domain=domain.name, group=group.name,
                       server_name=row.server_name, session_id=row.id, record_id=r.record_id, kind=r.kind,
                       status=r.status, kernel_id=r.kernel_id, msg_id=r.msg_id, execution_count=r.execution_count,
                       started_at=r.started_at, ended_at=r.ended_at, code=r.code, code_size=r.code_size,
                       code_sha256=r.code_sha256, truncated=r.truncated, captured_by=captured_by)
                  for r in batch.records]
        stmt = (_insert(s).values(values).on_conflict_do_nothing(index_elements=["session_id", "record_id"])
                .returning(CodeLog.id))  # the rows inserted (rowcount is not reliable for a multi-row insert)
        stored = len(s.execute(stmt).all())
    stream = s.get(CodeLogStream, row.id)
    if stream is None:
        s.add(CodeLogStream(session_id=row.id, last_seen_at=now, captured_by=captured_by))
    else:
        stream.last_seen_at, stream.captured_by, stream.gap_since = now, captured_by, None
    s.flush()
    return {"received": len(batch.records), "stored": stored, "duplicates": len(batch.records) - stored}


# -- gaps ------------------------------------------------------------------------------------------------

def record_gaps(s: Session, *, silence: timedelta, now: datetime | None = None) -> list[int]:
    """A ``gap`` row for each running, logged session that has shipped nothing (batch or heartbeat) for
    ``silence``: once per silence (shipping again closes it). Sessions never heard from count from
    their start. Returns the session ids."""
    now = now or utcnow()
    out = []
    rows = s.execute(select(KernelSession, CodeLogStream).outerjoin(
        CodeLogStream, CodeLogStream.session_id == KernelSession.id).where(
        KernelSession.status == SessionStatus.running)).all()
    for ks, stream in rows:
        if not logging_on(ks.group.domain, ks.group):
            continue
        last = stream.last_seen_at if stream is not None else (ks.started_at or ks.created_at)
        if stream is not None and stream.gap_since is not None:
            continue
        if last is None or now - last < silence:
            continue
        s.add(CodeLog(received_at=now, username=ks.user.username, domain=ks.group.domain.name, group=ks.group.name,
                      server_name=ks.server_name, session_id=ks.id, record_id=f"gap:{last.isoformat()}",
                      kind=CodeLogKind.gap, status=CodeLogStatus.unknown, started_at=last, ended_at=now,
                      code="", code_size=0, code_sha256="",
                      captured_by="service (no batch or heartbeat since started_at)"))
        if stream is None:
            s.add(CodeLogStream(session_id=ks.id, last_seen_at=last, gap_since=now))
        else:
            stream.gap_since = now
        out.append(ks.id)
    s.flush()
    return out


# -- read --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reach:
    """Whose records a reader sees: all (superadmin), some domains (domain admin) or one user's."""

    all: bool = False
    domains: frozenset[str] = frozenset()
    user: str | None = None

    def sees(self, row: CodeLog) -> bool:
        return self.all or row.domain in self.domains or (self.user is not None and row.username == self.user)

    def clause(self):
        if self.all:
            return None
        parts = []
        if self.domains:
            parts.append(CodeLog.domain.in_(sorted(self.domains)))
        if self.user is not None:
            parts.append(CodeLog.username == self.user)
        return or_(*parts) if parts else CodeLog.id.is_(None)


FILTERS = ("user", "domain", "group", "session", "server", "kind", "status", "since", "until", "q")


def parse_filters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """List filters from query parameters (strings) or the CLI; unknown ones are refused."""
    V.check_unknown(raw, FILTERS)
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if v is None or v == "":
            continue
        if k == "session":
            try:
                out[k] = V.integer(int(v) if isinstance(v, str) and v.isdigit() else v, k, minimum=1,
                                   maximum=V.INT32_MAX)
            except (ValueError, TypeError):
                raise InvalidInput(f"session: {v!r} is not a session id", field="session") from None
        elif k in ("since", "until"):
            out[k] = _time(v, k)
        elif k == "kind":
            if v not in CodeLogKind.__members__:
                raise InvalidInput(f"kind: must be one of {', '.join(CodeLogKind.__members__)}", field="kind")
            out[k] = CodeLogKind(v)
        elif k == "status":
            if v not in CodeLogStatus.__members__:
                raise InvalidInput(f"status: must be one of {', '.join(CodeLogStatus.__members__)}",
                                   field="status")
            out[k] = CodeLogStatus(v)
        else:
            out[k] = V.text(v, k, max_len=255)
    return out


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(reach: Reach, f: Mapping[str, Any]) -> list:
    cond = [c for c in (reach.clause(),) if c is not None]
    simple = {"user": CodeLog.username, "domain": CodeLog.domain, "group": CodeLog.group,
              "session": CodeLog.session_id, "server": CodeLog.server_name, "kind": CodeLog.kind,
              "status": CodeLog.status}
    cond += [col == f[k] for k, col in simple.items() if k in f]
    when = func.coalesce(CodeLog.started_at, CodeLog.received_at)
    if "since" in f:
        cond.append(when >= f["since"])
    if "until" in f:
        cond.append(when < f["until"])
    if "q" in f:
        cond.append(CodeLog.code.like(_like(f["q"]), escape="\\"))
    return cond


def list_(s: Session, reach: Reach, filters: Mapping[str, Any], *, limit: int, offset: int) -> tuple[list[dict], int]:
    """(one page of records, oldest first, and how many match)."""
    cond = _where(reach, filters)
    total = s.scalar(select(func.count()).select_from(CodeLog).where(and_(True, *cond)))
    rows = s.scalars(select(CodeLog).where(and_(True, *cond)).order_by(
        func.coalesce(CodeLog.started_at, CodeLog.received_at), CodeLog.id).limit(limit).offset(offset))
    return [to_dict(r) for r in rows], total or 0


def get(s: Session, reach: Reach, log_id: int) -> dict:
    row = s.get(CodeLog, log_id)
    if row is None or not reach.sees(row):
        raise NotFound(f"unknown code-log record {log_id}", field="id")
    return to_dict(row)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def to_dict(r: CodeLog) -> dict:
    return {"id": r.id, "user": r.username, "domain": r.domain, "group": r.group, "server_name": r.server_name,
            "session": r.session_id, "record_id": r.record_id, "kind": r.kind.value, "status": r.status.value,
            "kernel_id": r.kernel_id, "msg_id": r.msg_id, "execution_count": r.execution_count,
            "started_at": _iso(r.started_at), "ended_at": _iso(r.ended_at), "code": r.code,
            "code_size": r.code_size, "code_sha256": r.code_sha256, "truncated": r.truncated,
            "captured_by": r.captured_by, "received_at": _iso(r.received_at)}


# -- retention -----------------------------------------------------------------------------------------------

def _older(before: datetime):
    return CodeLog.received_at < before


def export_older(s: Session, before: datetime, batch: int = 1000) -> Iterator[str]:
    """JSON lines of every record received before ``before``, oldest first."""
    last = 0
    while True:
        rows = list(s.scalars(select(CodeLog).where(_older(before), CodeLog.id > last).order_by(CodeLog.id)
                              .limit(batch)))
        if not rows:
            return
        for r in rows:
            yield json.dumps(to_dict(r), ensure_ascii=False)
        last = rows[-1].id


def prune(s: Session, before: datetime) -> int:
    """Delete the records received before ``before``; how many went."""
    n = s.execute(delete(CodeLog).where(_older(before))).rowcount or 0
    # streams of sessions long gone are dead weight
    live = select(KernelSession.id).where(KernelSession.status != SessionStatus.terminated)
    s.execute(delete(CodeLogStream).where(CodeLogStream.last_seen_at < before,
                                          CodeLogStream.session_id.not_in(live)))
    return n


def parse_before(value: Any, field: str = "before") -> datetime:
    t = _time(value, field)
    if t is None:
        raise InvalidInput(f"{field}: required", field=field)
    return t
