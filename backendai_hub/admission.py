"""Session bookkeeping: resolve who is charged, admit atomically, queue for capacity, release.

Admission reads the usage of the keypair, group and domain and records the new session in ONE
transaction that no other admission can interleave with (SQLite: BEGIN IMMEDIATE, see db.py;
PostgreSQL: a transaction-scoped advisory lock), so concurrent spawns never over-admit. Usage is kept
per level in ``level_usage``, changed under the same lock in the transaction that changes a
session's live status (admit, release, a restarted server's stale row), so admitting reads four rows
whatever the number of live sessions; :func:`repair_usage` recounts it from the sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Context, Decimal
from typing import Callable, Iterable, Mapping

from sqlalchemy import and_, bindparam, func, or_, select, text
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import flag_modified

from . import policy as P
from .errors import AdmissionDenied, Forbidden, InvalidInput, NotFound
from .models import (
    HOST_USAGE,
    LIVE_STATUSES,
    Group,
    KernelSession,
    KeyPair,
    LevelUsage,
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


def _user_and_keypair(charged):
    return (select(User, KeyPair).outerjoin(KeyPair, and_(KeyPair.access_key == charged, KeyPair.user_id == User.id))
            .where(User.username == bindparam("username"))
            .options(joinedload(User.domain), joinedload(KeyPair.resource_policy)))


# built once: statements are immutable, and building one costs about what running it does
_USER_AND_MAIN_KEYPAIR = _user_and_keypair(User.main_access_key)
_USER_AND_KEYPAIR = _user_and_keypair(bindparam("access_key"))


def resolve(s: Session, username: str, group: str | None = None, access_key: str | None = None) -> Charge:
    """The keypair, group and domain a session of ``username`` is charged to, or a clear refusal."""
    # two queries whatever the tenancy's size: the user with their domain, the keypair charged (the
    # main one unless named) and its policy; then the user's groups (group_members is indexed by user;
    # joined into the first, SQLite would scan it)
    if access_key is None:
        found = s.execute(_USER_AND_MAIN_KEYPAIR, {"username": username}).first()
    else:
        found = s.execute(_USER_AND_KEYPAIR, {"username": username, "access_key": access_key}).first()
    if found is None:
        raise Forbidden(f"hub user {username!r} has no backendai-hub account")
    user, kp = found
    if user.status != UserStatus.active:
        raise Forbidden(f"user {username!r} is inactive")
    if not user.domain.is_active:
        raise Forbidden(f"domain {user.domain.name!r} is inactive")
    if access_key is not None:
        if kp is None:
            raise NotFound(f"unknown keypair {access_key!r}", field="access_key")
        if not kp.is_active:
            raise Forbidden(f"keypair {access_key!r} is inactive")
    else:
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


# -- usage per level ---------------------------------------------------------------------------------

# exact sums whatever the amounts (the default context rounds at 28 digits): what admit adds,
# release takes back to the last digit
_EXACT = Context(prec=200)


def _text(v: Decimal) -> str:
    return format(_EXACT.normalize(v), "f")


def _levels_of(access_key: str, group_id: int, domain_id: int) -> list[tuple[str, str]]:
    """The ``level_usage`` keys a session charged to these counts at, the host last."""
    return [("keypair", access_key), ("group", str(group_id)), ("domain", str(domain_id)), HOST_USAGE]


# the four rows an admission reads, by primary key (an OR: SQLite scans the table for a row-value IN)
_LEVEL_ROWS = select(LevelUsage).where(or_(
    *(and_(LevelUsage.kind == kind, LevelUsage.key == bindparam(kind)) for kind in ("keypair", "group", "domain")),
    and_(LevelUsage.kind == HOST_USAGE[0], LevelUsage.key == HOST_USAGE[1])))


def _usage_rows(s: Session, keys: list[tuple[str, str]]) -> list[LevelUsage | None]:
    """The rows of ``keys`` (a session's four, or the host's), read once per transaction; None where
    a level holds nothing yet."""
    tx = s.get_transaction()
    cache = s.info.get("level_usage")
    if cache is None or cache[0] is not tx:
        # the session's identity map holds objects weakly: keep this transaction's rows at hand
        cache = s.info["level_usage"] = (tx, {})
    rows = cache[1]
    missing = [k for k in keys if k not in rows]
    if len(missing) > 1:
        found = {(r.kind, r.key): r for r in s.scalars(_LEVEL_ROWS, {kind: key for kind, key in keys[:3]})}
        rows.update({k: found.get(k) for k in missing})
    elif missing:
        rows[missing[0]] = s.get(LevelUsage, missing[0])
    return [rows[k] for k in keys]


def _merge(into: Mapping[str, object], amounts: Mapping[str, object], sign: int) -> dict[str, str]:
    """``into`` ± ``amounts`` (decimal strings), exact; zeros dropped, a negative result clamped at zero."""
    out = {k: Decimal(str(v)) for k, v in into.items()}
    for k, v in amounts.items():
        d = Decimal(str(v))
        out[k] = _EXACT.add(out.get(k, Decimal(0)), d if sign > 0 else -d)
    return {k: _text(v) for k, v in sorted(out.items()) if v > 0}


def _held(held: Mapping, allocation: Mapping | None, sign: int) -> dict:
    """The host's ``held`` ± one session's allocation (its devices and the CPUs it is pinned to)."""
    allocation = allocation or {}
    devices = dict(held.get("devices") or {})
    for slot, per in (allocation.get("devices") or {}).items():
        devices[slot] = _merge(devices.get(slot) or {}, per, sign)
    cpus = dict(held.get("cpus") or {})
    for cpu in allocation.get("cpuset") or ():
        cpus[str(cpu)] = cpus.get(str(cpu), 0) + sign
    out = {"devices": {k: v for k, v in sorted(devices.items()) if v},
           "cpus": {k: v for k, v in sorted(cpus.items(), key=lambda kv: int(kv[0])) if v > 0}}
    return {k: v for k, v in out.items() if v}


def _count(s: Session, row: KernelSession, sign: int) -> None:
    """Add (+1) or take back (-1) what a live ``row`` holds at its levels and on the host."""
    keys = _levels_of(row.access_key, row.group_id, row.domain_id)
    for key, usage in zip(keys, _usage_rows(s, keys)):
        if usage is None:  # the level's first session
            usage = s.info["level_usage"][1][key] = LevelUsage(kind=key[0], key=key[1], sessions=0, slots={},
                                                               held={})
            s.add(usage)
            if key == HOST_USAGE:
                s.flush()  # the host's first session: persistent now, so the allocator's s.get finds it
        # new values, never mutated ones: the ORM sees a JSON column change only by assignment
        usage.sessions = max(0, (usage.sessions or 0) + sign)
        usage.slots = _merge(usage.slots or {}, row.slots or {}, sign)
        if (usage.kind, usage.key) == HOST_USAGE:
            usage.held = _held(usage.held or {}, row.allocation, sign)
        else:
            flag_modified(usage, "held")  # one UPDATE shape for the four rows: one executemany


def level_usage(s: Session, charge: Charge) -> list[P.Usage]:
    """What the live sessions hold at the charge's keypair, group and domain (read under the lock to admit)."""
    rows = _usage_rows(s, _levels_of(charge.access_key, charge.group_id, charge.domain_id))[:3]
    return [P.Usage(P.slots_from_json(r.slots), r.sessions or 0) if r is not None else P.Usage() for r in rows]


def host_usage(s: Session) -> P.Slots:
    """What the live sessions hold on the host, summed."""
    (host,) = _usage_rows(s, [HOST_USAGE])
    return P.slots_from_json(host.slots) if host is not None else {}


def _host_cpu_load(s: Session) -> dict[int, int]:
    (host,) = _usage_rows(s, [HOST_USAGE])
    return {int(c): n for c, n in ((host.held or {}) if host is not None else {}).get("cpus", {}).items()}


def _canonical(sessions: int, slots: Mapping, held: Mapping) -> dict | None:
    """One level's usage in one comparable form; None when it holds nothing."""
    slots = _merge({}, slots or {}, 1)
    held = _held(held or {}, None, 1)
    if not sessions and not slots and not held:
        return None
    return {"sessions": sessions, "slots": slots, "held": held}


def stored_usage(s: Session) -> dict[tuple[str, str], dict]:
    """``level_usage`` as it is: (kind, key) -> {"sessions", "slots", "held"}, levels holding nothing left out."""
    out = {}
    for r in s.scalars(select(LevelUsage)):
        c = _canonical(r.sessions or 0, r.slots, r.held)
        if c is not None:
            out[(r.kind, r.key)] = c
    return out


def counted_usage(s: Session) -> dict[tuple[str, str], dict]:
    """What ``level_usage`` should say, counted from every live session (as :func:`stored_usage`)."""
    levels: dict[tuple[str, str], list] = {}
    rows = s.execute(select(KernelSession.access_key, KernelSession.group_id, KernelSession.domain_id,
                            KernelSession.slots, KernelSession.allocation)
                     .where(KernelSession.status.in_(LIVE_STATUSES)).order_by(KernelSession.id))
    for access_key, group_id, domain_id, slots, allocation in rows:
        for key in _levels_of(access_key, group_id, domain_id):
            level = levels.setdefault(key, [0, {}, {}])
            level[0] += 1
            level[1] = _merge(level[1], slots or {}, 1)
            if key == HOST_USAGE:
                level[2] = _held(level[2], allocation, 1)
    out = {}
    for key, (n, slots, held) in levels.items():
        c = _canonical(n, slots, held)
        if c is not None:
            out[key] = c
    return out


def repair_usage(s: Session) -> list[str]:
    """Recount ``level_usage`` from the live sessions, under the admission lock; what was wrong, one line each.

    Run at hub start and by the reconciler: usage kept step by step can only drift through writes
    that bypass admission (a session row deleted with its user, group or keypair; a hand edit).
    """
    _lock(s)
    want, have = counted_usage(s), stored_usage(s)
    fixed = []
    for key in sorted(set(want) | set(have)):
        if want.get(key) == have.get(key):
            continue
        fixed.append(f"{key[0]} {key[1] or '-'}: recorded {_describe(have.get(key))}, "
                     f"live sessions hold {_describe(want.get(key))}")
        row = s.get(LevelUsage, key)
        c = want.get(key) or {"sessions": 0, "slots": {}, "held": {}}
        if row is None:
            s.add(LevelUsage(kind=key[0], key=key[1], sessions=c["sessions"], slots=c["slots"], held=c["held"]))
        else:
            row.sessions, row.slots, row.held = c["sessions"], c["slots"], c["held"]
    s.flush()
    return fixed


def _describe(c: dict | None) -> str:
    if c is None:
        return "nothing"
    text_ = f"{c['sessions']} session(s), {P.format_slots(P.slots_from_json(c['slots']))}"
    if c["held"].get("devices"):
        text_ += f", devices {c['held']['devices']}"
    if c["held"].get("cpus"):
        text_ += f", cpus {c['held']['cpus']}"
    return text_


def fits(request: Mapping[str, Decimal], used: Mapping[str, Decimal], capacity: Mapping[str, Decimal]) -> bool:
    """Whether ``request`` fits what is left of the host's ``capacity`` (a slot it lacks: no limit)."""
    return all(used.get(k, Decimal(0)) + v <= capacity[k] for k, v in request.items() if k in capacity)


def _lock(s: Session) -> None:
    """Serialize admissions across processes (SQLite's BEGIN IMMEDIATE already does)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADMISSION_LOCK_KEY})


_LIVE_SERVER = select(KernelSession).where(
    KernelSession.user_id == bindparam("user_id"), KernelSession.server_name == bindparam("server_name"),
    KernelSession.status.in_(LIVE_STATUSES))


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
    stale = s.scalars(_LIVE_SERVER, {"user_id": charge.user_id, "server_name": server_name}).all()
    for old in stale:
        _terminate(s, old, "replaced by a new start of the same server")
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
    _count(s, row, +1)
    s.flush()
    return row


def _new_row(charge: Charge, server_name: str, image: str, app: str, request, status) -> KernelSession:
    return KernelSession(user_id=charge.user_id, server_name=server_name, access_key=charge.access_key,
                         group_id=charge.group_id, domain_id=charge.domain_id, image=image, app=app,
                         slots=P.slots_to_json(request), allocation={}, status=status, status_info="",
                         created_at=_now())


def pick_cpuset(s: Session, cpus: int, host_cpus: int) -> list[int]:
    """The ``cpus`` least-shared CPUs of the host (ties to the lowest ids), for cpuset pinning."""
    held = _host_cpu_load(s)
    load = {i: held.get(i, 0) for i in range(host_cpus)}
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


def _terminate(s: Session, row: KernelSession, reason: str) -> None:
    """End ``row``; what a live one held goes back to its levels, and the keypairs issued to it (a web
    shell's own) are deleted: whoever ends a session, its credentials end with it (the caller holds
    the admission lock)."""
    if row.status in LIVE_STATUSES:
        _count(s, row, -1)
    row.status, row.status_info, row.terminated_at = SessionStatus.terminated, reason, _now()
    for kp in list(s.scalars(select(KeyPair).where(KeyPair.session_id == row.id))):
        retire_keypair(s, kp)


def retire_keypair(s: Session, kp: KeyPair) -> None:
    """End a session's own keypair: deleted, or, when something else hangs on it (it became its user's
    main key, or sessions are charged to it: deleting it would delete their rows along), deactivated
    and no longer the session's."""
    in_use = kp.user.main_access_key == kp.access_key or s.scalar(
        select(KernelSession.id).where(KernelSession.access_key == kp.access_key).limit(1)) is not None
    if in_use:
        kp.is_active, kp.session_id = False, None
    else:
        s.delete(kp)
    s.flush()


def retire_orphan_session_keys(s: Session) -> list[str]:
    """The session keypairs whose session ended without releasing them (its row went with the group or
    keypair it was charged to, say), retired; their access keys."""
    ended = ~select(KernelSession.id).where(KernelSession.id == KeyPair.session_id,
                                             KernelSession.status != SessionStatus.terminated).exists()
    orphans = list(s.scalars(select(KeyPair).where(KeyPair.session_id.is_not(None), ended)))
    for kp in orphans:
        retire_keypair(s, kp)
    return [kp.access_key for kp in orphans]


def release(s: Session, session_id: int | None, reason: str) -> bool:
    """Free what a session holds (idempotent); True if it was live or queued."""
    if session_id is None:
        return False
    _lock(s)  # usage is read-modify-write: never beside an admission or another release
    row = s.get(KernelSession, session_id)
    if row is None or row.status == SessionStatus.terminated:
        return False
    if row.status_info.startswith("stopping: "):
        reason = row.status_info[len("stopping: "):]  # the culler said why it stopped the server
    _terminate(s, row, reason)
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
