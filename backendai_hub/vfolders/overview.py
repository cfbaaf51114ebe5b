"""The sidebar's overview: every folder a user reaches, its mount state in one session and the actions the
rules allow on it (each with the refusal it would meet), read in a few statements, not a few per folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from .. import host_permissions as H
from .. import tenancy as T
from ..errors import TenancyError
from ..models import (
    LIVE_STATUSES,
    KernelSession,
    User,
    VFolder,
    VFolderGrant,
    VFolderMount,
    VFolderStatus,
    VFolderUsageMode,
)
from ..session_user import SESSION_HOME
from . import limits as L
from . import permissions as A
from .folders import check_unmounted
from .invitations import check_invitable, list_invitations
from .lookup import grants_of, host_grants_for, reach, view
from .sharing import check_shareable

# how the user reaches a folder -> the sidebar's section
SECTION = {A.OWNER: "mine", A.ADMIN: "group", A.GROUP: "group", A.OVERRIDE: "group", A.INVITED: "shared",
           A.PUBLIC: "public"}
ACTIONS = ("rename", "delete", "invite", "share", "kick", "leave", "clone", "upload", "download", "mount")
USAGE_MODES = tuple(m.value for m in VFolderUsageMode)

UsageOf = Callable[[Sequence[tuple[str, str]]], Mapping[str, "int | None"]]  # [(host, id)] -> id -> bytes


def hosts(storage, grants: Mapping[str, frozenset[str]]) -> list[dict]:
    """The storage hosts and what they grant the user (the ``vfolder-hosts`` route's items)."""
    return [{"name": h, "allowed": bool(grants.get(h)), "default": h == storage.default_host,
             "permissions": [perm for perm in H.HOST_PERMISSIONS if perm in grants.get(h, ())],
             "quota_backend": storage.quota_backend} for h in sorted(storage.hosts)]


@dataclass(frozen=True)
class FolderFacts:
    """What the actions on one folder depend on (see :func:`actions`)."""

    folder: A.FolderView
    grants: Mapping[str, str]  # per-user permissions on it
    host: str
    is_group: bool
    host_grants: Mapping[str, frozenset[str]]  # what the storage hosts grant the user for this folder
    mount_grants: Mapping[str, frozenset[str]]  # ... for mounting it (the spawner's: no group level)
    live_sessions: tuple[int, ...] = ()  # live sessions of anyone that mount it
    create_refusal: str | None = None  # why the user may not create a folder (a clone makes one)


def _outcome(check: Callable[[], None]) -> dict:
    try:
        check()
    except TenancyError as e:
        return {"allowed": False, "reason": e.message}
    return {"allowed": True, "reason": None}


def actions(who: A.SubjectLike, f: FolderFacts) -> dict[str, dict]:
    """PURE: each action's ``{"allowed", "reason"}``, checked in the order the action itself checks, so
    a reason is the sentence the action would answer."""

    def op(name: str, host_perm: str | None = None, after: Callable[[], None] | None = None,
           grants: Mapping[str, frozenset[str]] | None = None) -> dict:
        def check():
            A.check(who, f.folder, f.grants, name)
            if host_perm is not None:
                H.check_host(f.host_grants if grants is None else grants, f.host, host_perm, who.username)
            if after is not None:
                after()
        return _outcome(check)

    def can_create():
        if f.create_refusal:
            raise TenancyError(f.create_refusal)

    return {
        "rename": op("rename", H.MODIFY_VFOLDER),
        "delete": op("delete", H.DELETE_VFOLDER, lambda: check_unmounted(f.folder.name, f.live_sessions, "delete")),
        "invite": op("invite", H.INVITE_OTHERS, lambda: check_invitable(f.folder.name, f.folder.owner_group)),
        "share": op("share", H.SET_USER_PERM, lambda: check_shareable(f.folder.name, f.is_group)),
        "kick": op("kick"),
        "leave": op("leave"),
        "clone": op("clone", after=can_create),
        "upload": op("write", H.UPLOAD_FILE),
        "download": op("read", H.DOWNLOAD_FILE),
        "mount": op("mount", H.MOUNT_IN_SESSION, grants=f.mount_grants),
    }


def _reachable(s: Session, user: User, who: A.SubjectLike) -> list[VFolder]:
    """The live folders of the user's domain that they may reach (a superset the rules then sift: own,
    their groups', granted to them, public; every group folder for an admin of the domain)."""
    q = (select(VFolder).where(VFolder.domain_id == user.domain_id, VFolder.status != VFolderStatus.trashed,
                               reach(user.id, [g.id for g in user.groups], who.administers(user.domain.name)))
         .options(joinedload(VFolder.user), joinedload(VFolder.group),
                  selectinload(VFolder.grants).joinedload(VFolderGrant.user))
         .order_by(VFolder.name, VFolder.created_at))
    return list(s.scalars(q).unique())


def _create_refusal(s: Session, user: User, grants: Mapping[str, frozenset[str]]) -> str | None:
    if not any(H.CREATE_VFOLDER in perms for perms in grants.values()):
        allowed = ", ".join(sorted(h for h, p in grants.items() if p)) or "none"
        return (f"no storage host grants 'create-vfolder' to {user.username!r} (the union of domain, groups and "
                f"keypair policy allows: {allowed})")
    try:
        L.check_count(s, L.owner_key(user, None), "user", user.resource_policy, user.username)
    except TenancyError as e:
        return e.message
    return None


def overview(s: Session, storage, who: A.SubjectLike, server: str | None, usage_of: UsageOf,
             access_key: str | None = None, home: str = SESSION_HOME) -> dict:
    """The ``sidebar`` answer for ``who``; ``server`` names the session whose mounts are shown (None: none)."""
    user = T.users.get(s, who.username)
    base = host_grants_for(s, user, access_key)
    mount_grants = host_grants_for(s, user)
    by_group: dict[int, Mapping[str, frozenset[str]]] = {}
    live: dict[str, list[int]] = {}
    for vfid, sid in s.execute(select(VFolderMount.vfolder_id, VFolderMount.session_id)
                               .join(KernelSession, KernelSession.id == VFolderMount.session_id)
                               .where(KernelSession.status.in_(LIVE_STATUSES))
                               .order_by(VFolderMount.session_id)):
        live.setdefault(vfid, []).append(sid)
    mine: dict[str, VFolderMount] = {}
    if server is not None:
        sid = s.scalar(select(KernelSession.id).where(KernelSession.user_id == user.id,
                                                      KernelSession.server_name == server,
                                                      KernelSession.status.in_(LIVE_STATUSES))
                       .order_by(KernelSession.id.desc()).limit(1))
        if sid is not None:
            mine = {m.vfolder_id: m for m in s.scalars(select(VFolderMount).where(VFolderMount.session_id == sid))}
    refusal = _create_refusal(s, user, base)
    seen = []
    for vf in _reachable(s, user, who):
        fv, grants = view(vf), grants_of(vf)
        acc = A.effective_permission(who, fv, grants)
        if acc.visible:
            seen.append((vf, fv, grants, acc))
    used = usage_of([(vf.host, vf.id) for vf, *_ in seen]) if seen else {}
    folders = []
    for vf, fv, grants, acc in seen:
        if vf.group_id is not None and vf.group_id not in by_group:
            by_group[vf.group_id] = H.merge_host_grants(base, vf.group.allowed_vfolder_hosts,
                                                        vf.group.domain.allowed_vfolder_hosts)
        facts = FolderFacts(folder=fv, grants=grants, host=vf.host, is_group=vf.group_id is not None,
                            host_grants=by_group.get(vf.group_id, base) if vf.group_id else base,
                            mount_grants=mount_grants, live_sessions=tuple(live.get(vf.id, ())),
                            create_refusal=refusal)
        m = mine.get(vf.id)
        folders.append({
            "id": vf.id, "name": vf.name, "group": SECTION.get(acc.via or "", "public"),
            "group_name": vf.group.name if vf.group is not None else None,
            "owner": vf.user.username if vf.user else vf.group.name,
            "permission": acc.perm, "host": vf.host, "usage_mode": vf.usage_mode.value,
            "quota_bytes": vf.quota, "used_bytes": used.get(vf.id), "cloneable": vf.cloneable,
            "public": vf.is_public, "status": vf.status.value,
            "created_at": vf.created_at.isoformat() if vf.created_at else None,
            "mount": {"mounted": m is not None, "path": m.target if m else f"{home}/{vf.name}",
                      "mode": None if m is None else ("ro" if m.read_only else "rw")},
            "actions": actions(who, facts),
        })
    return {
        "me": {"username": user.username, "email": user.email, "domain": user.domain.name,
               "groups": sorted(g.name for g in user.groups), "server": server, "home": home},
        "folders": folders,
        "invitations": list_invitations(s, who),
        "hosts": hosts(storage, base),
        "usage_modes": list(USAGE_MODES),
        "can_create": {"allowed": refusal is None, "reason": refusal},
    }
