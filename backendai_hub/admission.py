"""Session bookkeeping: resolve who is charged, admit atomically, queue for capacity, release.

Admission reads the usage of the keypair, group and domain and records the new session in ONE
transaction that no other admission can interleave with (SQLite: BEGIN IMMEDIATE, see db.py;
PostgreSQL: a transaction-scoped advisory lock), so concurrent spawns never over-admit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, Iterable, Mapping

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from . import policy as P
from .errors import AdmissionDenied, Forbidden, InvalidInput, NotFound
from .models import (
    LIVE_STATUSES,
    Group,
    KernelSession,
    KeyPair,
    SessionStatus,
    User,
    UserStatus,
)

ADMISSION_LOCK_KEY = 0x42414948  # "BAIH": one advisory lock serializes admissions on PostgreSQL


@dataclass(frozen=True)
class Charge:
    """Who a session is charged to, resolved from the hub user and the chosen group."""

    user_id: int
    username: str
    access_key: str
    group_id: int
    group: str
    domain_id: int
    domain: str
    levels: tuple[P.Level, ...]
    allowed_images: tuple[str, ...]  # empty: no restriction at domain or group level
    groups: tuple[str, ...] = field(default_factory=tuple)  # every group the user may pick
    egress: str = "none"  # the keypair policy's network egress
    egress_allowlist: tuple[str, ...] = ()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def levels_for(kp: KeyPair, group: Group) -> list[P.Level]:
    """The keypair, group and domain levels that bound a session charged to ``group``."""
    if group.domain_id != kp.user.domain_id:
        raise InvalidInput(f"group {group.name!r} is not in the user's domain", field="group")
    rp = kp.resource_policy
    return [
        P.Level("keypair", kp.access_key, P.slots_from_json(rp.total_resource_slots),
                rp.max_concurrent_sessions),
        P.Level("group", group.name, P.slots_from_json(group.total_resource_slots)),
        P.Level("domain", group.domain.name, P.slots_from_json(group.domain.total_resource_slots)),
    ]


def resolve(s: Session, username: str, group: str | None = None, access_key: str | None = None) -> Charge:
    """The keypair, group and domain a session of ``username`` is charged to, or a clear refusal."""
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise Forbidden(f"hub user {username!r} has no backendai-hub account")
    if user.status != UserStatus.active:
        raise Forbidden(f"user {username!r} is inactive")
    if not user.domain.is_active:
        raise Forbidden(f"domain {user.domain.name!r} is inactive")
    if access_key is not None:
        kp = s.get(KeyPair, access_key)
        if kp is None or kp.user_id != user.id:
            raise NotFound(f"unknown keypair {access_key!r}", field="access_key")
        if not kp.is_active:
            raise Forbidden(f"keypair {access_key!r} is inactive")
    else:
        kp = user.main_keypair
        if kp is None:
            raise Forbidden(f"user {username!r} has no active keypair; ask an admin to issue one "
                            f"(backendai-hub keypair issue {username})")
        if not kp.is_active:
            raise Forbidden(f"the main keypair {kp.access_key!r} of {username!r} is inactive; an admin can "
                            f"re-activate it or make another keypair the main one "
                            f"(backendai-hub user update {username} --main-keypair ACCESS_KEY)")
    groups = [g for g in user.groups if g.is_active]
    if not groups:
        raise Forbidden(f"user {username!r} belongs to no active group to charge sessions to")
    if group is None:
        chosen = groups[0]
    else:
        matches = [g for g in groups if g.name == group]
        if not matches:
            raise Forbidden(f"user {username!r} is not a member of group {group!r} "
                            f"(member of: {', '.join(g.name for g in groups)})")
        chosen = matches[0]
    levels = tuple(levels_for(kp, chosen))
    images = tuple(sorted(set(user.domain.allowed_images or []) | set(chosen.allowed_images or [])))
    if user.domain.allowed_images and chosen.allowed_images:
        images = tuple(sorted(set(user.domain.allowed_images) & set(chosen.allowed_images)))
    return Charge(user.id, user.username, kp.access_key, chosen.id, chosen.name, user.domain_id, user.domain.name,
                  levels, images, tuple(g.name for g in groups), kp.resource_policy.egress or "none",
                  tuple(kp.resource_policy.egress_allowlist or ()))


def _usage(s: Session, where) -> P.Usage:
    rows = s.scalars(select(KernelSession.slots).where(KernelSession.status.in_(LIVE_STATUSES), where)).all()
    total: P.Slots = {}
    for slots in rows:
        total = P.add_slots(total, P.slots_from_json(slots))
    return P.Usage(total, len(rows))


def level_usage(s: Session, charge: Charge) -> list[P.Usage]:
    return [
        _usage(s, KernelSession.access_key == charge.access_key),
        _usage(s, KernelSession.group_id == charge.group_id),
        _usage(s, KernelSession.domain_id == charge.domain_id),
    ]


def host_usage(s: Session) -> P.Slots:
    return _usage(s, text("1=1")).slots


def fits(request: Mapping[str, Decimal], used: Mapping[str, Decimal], capacity: Mapping[str, Decimal]) -> bool:
    """Whether ``request`` fits what is left of the host's ``capacity`` (a slot it lacks: no limit)."""
    return all(used.get(k, Decimal(0)) + v <= capacity[k] for k, v in request.items() if k in capacity)


def _lock(s: Session) -> None:
    """Serialize admissions across processes (SQLite's BEGIN IMMEDIATE already does)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADMISSION_LOCK_KEY})


def admit(s: Session, charge: Charge, *, server_name: str, image: str, app: str,
          request: Mapping[str, Decimal], known_slots: Iterable[str] | None = None,
          capacity: Mapping[str, Decimal] | None = None, queue: bool = False,
          queued_id: int | None = None, host_cpus: int | None = None,
          allocator: Callable[[Session, Mapping[str, Decimal], int | None], dict | None] | None = None,
          ) -> KernelSession:
    """Record a session if every policy level and the host can fit it; raise AdmissionDenied if not.

    With ``queue`` true, a session that fits the policies but not the host's free capacity is
    recorded as ``queued`` (holding nothing) instead of refused; call again with ``queued_id``
    to try to promote it (first come, first served).

    ``allocator(s, request, host_cpus)`` (accelerators.DeviceAllocator) runs under the same lock once
    the policies and host capacity allow the session: it returns what to merge into the row's
    ``allocation`` (``{"devices": ...}``, maybe a NUMA-local ``cpuset``), or None when no device is
    free, which then counts as a full host (queued or refused).
    """
    _lock(s)
    # a server being started again has no live session any more: drop what a crash left behind
    stale = s.scalars(select(KernelSession).where(
        KernelSession.user_id == charge.user_id, KernelSession.server_name == server_name,
        KernelSession.status.in_(LIVE_STATUSES))).all()
    for old in stale:
        _terminate(old, "replaced by a new start of the same server")
    s.flush()
    decision = P.admit(request, list(zip(charge.levels, level_usage(s, charge))), known_slots)
    if not decision:
        raise AdmissionDenied(decision.reason, level=decision.level, slot=decision.slot)
    row = s.get(KernelSession, queued_id) if queued_id is not None else None
    if row is not None and row.status != SessionStatus.queued:
        raise Forbidden(f"session {queued_id} left the queue ({row.status.value}: {row.status_info})")
    ahead = 0
    if queued_id is not None:
        ahead = s.scalar(select(func.count()).select_from(KernelSession).where(
            KernelSession.status == SessionStatus.queued, KernelSession.id < queued_id))
    full = capacity is not None and (ahead or not fits(request, host_usage(s), capacity))
    # [accelerators] pick devices under the admission lock: never two sessions on one device
    devices = None if full or allocator is None else allocator(s, request, host_cpus)
    if full or (allocator is not None and devices is None):
        if not queue:
            if not full:
                raise AdmissionDenied(f"the host has no free device for {P.format_slots(dict(request))} "
                                      "right now", level="host")
            raise AdmissionDenied("the host has no free capacity for "
                                  f"{P.format_slots(dict(request))} right now "
                                  f"({P.format_slots(host_usage(s))} of {P.format_slots(dict(capacity))} in use)",
                                  level="host")
        if row is None:
            row = _new_row(charge, server_name, image, app, request, SessionStatus.queued)
            s.add(row)
            s.flush()
        return row
    if row is None:
        row = _new_row(charge, server_name, image, app, request, SessionStatus.starting)
        s.add(row)
    else:
        row.status, row.slots = SessionStatus.starting, P.slots_to_json(request)
    if devices:  # [accelerators]
        row.allocation = {**(row.allocation or {}), **devices}
    if host_cpus and "cpu" in request and "cpuset" not in (row.allocation or {}):
        # pin to whole CPUs so that nproc inside tells the truth; quota enforces fractions
        row.allocation = {**(row.allocation or {}),
                          "cpuset": pick_cpuset(s, int(-(-request["cpu"] // 1)), host_cpus)}
    s.flush()
    return row


def _new_row(charge: Charge, server_name: str, image: str, app: str, request, status) -> KernelSession:
    return KernelSession(user_id=charge.user_id, server_name=server_name, access_key=charge.access_key,
                         group_id=charge.group_id, domain_id=charge.domain_id, image=image, app=app,
                         slots=P.slots_to_json(request), allocation={}, status=status, status_info="",
                         created_at=_now())


def pick_cpuset(s: Session, cpus: int, host_cpus: int) -> list[int]:
    """The ``cpus`` least-shared CPUs of the host (ties to the lowest ids), for cpuset pinning."""
    load = {i: 0 for i in range(host_cpus)}
    for alloc in s.scalars(select(KernelSession.allocation).where(KernelSession.status.in_(LIVE_STATUSES))):
        for cpu in (alloc or {}).get("cpuset", []):
            if cpu in load:
                load[cpu] += 1
    return sorted(sorted(load, key=lambda c: (load[c], c))[:max(1, min(cpus, host_cpus))])


def queue_position(s: Session, session_id: int) -> int:
    """1-based place in the queue (0 when not queued)."""
    row = s.get(KernelSession, session_id)
    if row is None or row.status != SessionStatus.queued:
        return 0
    return 1 + s.scalar(select(func.count()).select_from(KernelSession).where(
        KernelSession.status == SessionStatus.queued, KernelSession.id < session_id))


def mark_running(s: Session, session_id: int, container_id: str | None) -> None:
    row = s.get(KernelSession, session_id)
    if row is None or row.status not in LIVE_STATUSES:
        raise InvalidInput(f"session {session_id} is not starting")
    row.status, row.container_id, row.started_at = SessionStatus.running, container_id, _now()


def _terminate(row: KernelSession, reason: str) -> None:
    row.status, row.status_info, row.terminated_at = SessionStatus.terminated, reason, _now()


def release(s: Session, session_id: int | None, reason: str) -> bool:
    """Free what a session holds (idempotent); True if it was live or queued."""
    if session_id is None:
        return False
    row = s.get(KernelSession, session_id)
    if row is None or row.status == SessionStatus.terminated:
        return False
    if row.status_info.startswith("stopping: "):
        reason = row.status_info[len("stopping: "):]  # the culler said why it stopped the server
    _terminate(row, reason)
    return True


def live_sessions(s: Session) -> list[KernelSession]:
    return list(s.scalars(select(KernelSession).where(
        KernelSession.status.in_((*LIVE_STATUSES, SessionStatus.queued))).order_by(KernelSession.id)))


def session_to_dict(row: KernelSession) -> dict:
    return {
        "id": row.id,
        "user": row.user.username,
        "server_name": row.server_name,
        "access_key": row.access_key,
        "group": row.group.name,
        "domain": row.group.domain.name,
        "image": row.image,
        "app": row.app,
        "resources": dict(row.slots or {}),
        "status": row.status.value,
        "status_info": row.status_info,
        "container_id": row.container_id,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "terminated_at": row.terminated_at.isoformat() if row.terminated_at else None,
    }
