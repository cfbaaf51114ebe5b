"""What the self-service page shows a signed-in user: their keys, sessions, folders (no secret, ever)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import session_query as Q
from .. import tenancy as T
from ..errors import InvalidInput, NotFound, StorageError
from ..models import KeyPairResourcePolicy, SessionStatus, VFolder, VFolderMount, VFolderStatus
from ..policy import format_slots, slots_from_json
from ..vfolders import lookup
from ..vfolders.storage import StorageHosts, usage
from .rules import Principal, session_scope

LIVE = (SessionStatus.queued, SessionStatus.starting, SessionStatus.running)
MAX_SESSIONS = 500  # rows per table; the REST list pages through more


def uptime(started: datetime | None, now: datetime) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``7 min``, ``< 1 min``; ``-`` before it started."""
    if started is None:
        return "-"
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    seconds = max(0, int((now - started).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "< 1 min"


def size_text(n: int | None) -> str:
    """Bytes in binary units with one decimal (``1.5 GiB``); ``-`` when unknown."""
    if n is None:
        return "-"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def issue_policies(s: Session, p: Principal, main_policy: str | None) -> tuple[list[str], str | None]:
    """(policies the caller may choose for a key of their own, the one a key gets without a choice).

    Users choose none: their new keys get their main key's policy (service/keypairs.py). Domain admins
    choose among those their domain allows, superadmins any."""
    if p.is_superadmin:
        names = list(s.scalars(select(KeyPairResourcePolicy.name).order_by(KeyPairResourcePolicy.name)))
    elif p.is_admin:
        names = sorted((T.domains.get(s, p.domain).allowed_resource_policies or {}).get("keypair", []))
    else:
        names = []
    return names, main_policy


def _mounts(s: Session, ids: list[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = s.execute(select(VFolderMount.session_id, VFolder.name, VFolderMount.target, VFolderMount.read_only)
                     .join(VFolder, VFolder.id == VFolderMount.vfolder_id)
                     .where(VFolderMount.session_id.in_(ids)).order_by(VFolderMount.target))
    for sid, name, target, ro in rows:
        out[sid].append({"name": name, "target": target, "read_only": bool(ro)})
    return out


def _session_rows(s: Session, rows, now: datetime) -> list[dict]:
    mounts = _mounts(s, [r.id for r in rows])
    return [{"id": r.id, "name": Q.session_name(r.server_name), "user": r.user.username, "group": r.group.name,
             "domain": r.group.domain.name, "image": r.image, "app": r.app,
             "resources": format_slots(slots_from_json(r.slots or {})), "status": r.status.value,
             "status_info": r.status_info or "", "uptime": uptime(r.started_at, now),
             "started_at": r.started_at.isoformat() if r.started_at else "", "mounts": mounts[r.id],
             "accelerators": Q.holds_accelerators(r)} for r in rows]


def sessions(s: Session, p: Principal, now: datetime) -> tuple[list[dict], list[dict]]:
    """(the caller's live sessions, the other live sessions of their scope: none for plain users)."""
    live = Q.Filters(status=LIVE)
    own, _ = Q.find(s, Q.Scope(username=p.username), live, MAX_SESSIONS, 0)
    others: list = []
    if p.is_admin:
        found, _ = Q.find(s, session_scope(p), live, MAX_SESSIONS + len(own), 0)
        others = [r for r in found if r.user.username != p.username][:MAX_SESSIONS]
    return _session_rows(s, own, now), _session_rows(s, others, now)


def folders(s: Session, p: Principal, storage: StorageHosts) -> dict[str, Any]:
    """The caller's own folders and their groups' with bytes used against each quota, and the user
    policy's total (``max_quota_scope_size``) against what their own folders use."""
    user = T.users.get(s, p.username)
    rows, own_total = [], 0
    for vf, acc in lookup.list_for(s, p):
        mine = vf.user_id == user.id
        if vf.status != VFolderStatus.ready and not mine:
            continue
        if not (mine or (vf.group_id is not None and vf.group.name in p.groups and vf.domain.name == p.domain)):
            continue  # invited and public folders are someone else's quota
        try:
            used, files = usage(storage.ready_path(vf.host, vf.id))
        except (NotFound, InvalidInput, StorageError, OSError):
            used, files = None, None
        if mine and used:
            own_total += used
        percent = min(100, round(100 * used / vf.quota)) if used is not None and vf.quota else None
        rows.append({"name": vf.name, "host": vf.host, "type": "user" if mine else "group",
                     "owner": vf.user.username if vf.user else vf.group.name, "status": vf.status.value,
                     "used": used, "used_text": size_text(used), "files": files, "quota": vf.quota,
                     "quota_text": size_text(vf.quota) if vf.quota else "no quota", "percent": percent})
    policy = user.resource_policy
    scope_max = policy.max_quota_scope_size if policy is not None else None
    return {"rows": rows, "own_total": own_total, "own_total_text": size_text(own_total),
            "scope_max": scope_max, "scope_max_text": size_text(scope_max) if scope_max else None,
            "scope_percent": min(100, round(100 * own_total / scope_max)) if scope_max else None,
            "max_count": policy.max_vfolder_count if policy is not None else None,
            "own_count": sum(1 for r in rows if r["type"] == "user")}


def keypairs(s: Session, p: Principal) -> tuple[list[dict], str | None]:
    """The caller's keypairs (access keys, policy, state; never the secret) and their main key's policy."""
    user = T.users.get(s, p.username)
    rows = [{"access_key": k.access_key, "policy": k.resource_policy.name, "active": k.is_active,
             "main": k.access_key == user.main_access_key,
             "created_at": k.created_at.strftime("%Y-%m-%d %H:%M") if k.created_at else "-",
             # written in batches by the service (key_use.py): up to half a minute behind
             "last_used": k.last_used.strftime("%Y-%m-%d %H:%M") if k.last_used else "never",
             "shell_session": k.session_id}  # a web shell's own key: it goes when that session ends
            for k in user.keypairs]
    main = user.main_keypair
    return rows, main.resource_policy.name if main is not None else None


def page(s: Session, p: Principal, storage: StorageHosts, now: datetime | None = None) -> dict[str, Any]:
    """Everything the page renders, read in one transaction."""
    now = now or datetime.now(timezone.utc)
    keys, main_policy = keypairs(s, p)
    choices, default_policy = issue_policies(s, p, main_policy)
    own, others = sessions(s, p, now)
    scope = ("every domain" if p.is_superadmin else
             "domain " + ", ".join(sorted(p.admin_domains)) if p.is_admin else None)
    return {"username": p.username, "role": p.role, "domain": p.domain, "is_admin": p.is_admin,
            "scope": scope, "keypairs": keys, "policy_choices": choices, "default_policy": default_policy,
            "sessions": own, "scope_sessions": others, "folders": folders(s, p, storage)}
