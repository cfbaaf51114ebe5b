"""Folder CRUD: create, info, update, delete to the trash, restore, purge, each in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import host_permissions as H
from .. import tenancy as T
from ..db import flush_or_conflict
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import (
    LIVE_STATUSES,
    InvitationState,
    KernelSession,
    VFolder,
    VFolderInvitation,
    VFolderMount,
    VFolderStatus,
    utcnow,
)
from . import fields as FL
from . import limits as L
from . import permissions as A
from .lookup import access_of, check_host, find
from .storage import StorageHosts, usage

# Like the tenancy operations: every function takes an open session and a subject (who asks: the
# service's Principal or a permissions.Subject), parses its input once, checks the permission rules,
# and raises the typed errors of backendai_hub.errors. Filesystem work happens inside the same call;
# callers run it on an executor thread, as they already do for the database.


def to_dict(vf: VFolder, acc: A.Access | None = None) -> dict:
    return {
        "id": vf.id,
        "name": vf.name,
        "host": vf.host,
        "type": "user" if vf.user_id is not None else "group",
        "owner": vf.user.username if vf.user else vf.group.name,
        "domain": vf.domain.name,
        "usage_mode": vf.usage_mode.value,
        "permission": acc.perm if acc else None,  # the caller's
        "group_permission": vf.permission.value if vf.group_id is not None else None,
        "is_owner": bool(acc and acc.manage),
        "via": acc.via if acc else None,
        "cloneable": vf.cloneable,
        "public": vf.is_public,
        "quota": vf.quota,
        "status": vf.status.value,
        "created_at": vf.created_at.isoformat() if vf.created_at else None,
        "trashed_at": vf.trashed_at.isoformat() if vf.trashed_at else None,
    }


def live_mounts(s: Session, vf: VFolder) -> list[KernelSession]:
    return list(s.scalars(select(KernelSession).join(VFolderMount, VFolderMount.session_id == KernelSession.id)
                          .where(VFolderMount.vfolder_id == vf.id, KernelSession.status.in_(LIVE_STATUSES))
                          .order_by(KernelSession.id)))


def info(s: Session, storage: StorageHosts, who: A.SubjectLike, ref: Any) -> dict:
    vf, acc = find(s, who, ref, "info")
    out = to_dict(vf, acc)
    try:
        size, count = usage(storage.ready_path(vf.host, vf.id))
    except (NotFound, InvalidInput):
        size, count = None, None
    sessions = live_mounts(s, vf)
    out.update(size=size, file_count=count, mounted=bool(sessions),
               mounted_in=[{"session_id": k.id, "user": k.user.username, "server_name": k.server_name}
                           for k in sessions if acc.manage or k.user.username == who.username])
    return out


def _name_taken(s: Session, owner_key: str, name: str, exclude: str | None = None) -> bool:
    q = select(VFolder.id).where(VFolder.owner_key == owner_key, VFolder.live_name == name)
    if exclude:
        q = q.where(VFolder.id != exclude)
    return s.scalar(q) is not None


def create(s: Session, storage: StorageHosts, who: A.SubjectLike, data: Mapping[str, Any]) -> tuple[VFolder, A.Access]:
    f = FL.parse(data, FL.CREATE, FL.CREATE_DEFAULTS)
    name = f["name"]
    user = T.users.get(s, who.username)
    host = f["host"] or storage.default_host
    storage.root(host)  # 400 for an unknown host
    owner_user, owner_group = user, None
    domain = user.domain
    if f["group"] is not None:
        dname = f.get("domain", who.domain)
        if dname != who.domain and not who.is_superadmin:
            raise NotFound(f"unknown domain {dname!r}", field="domain")
        owner_group = T.groups.get(s, dname, f["group"])
        if not (who.administers(owner_group.domain.name) or
                (owner_group.domain.name == who.domain and owner_group.name in who.groups)):
            raise NotFound(f"unknown group {owner_group.name!r} in domain {dname!r}", field="group")
        if not who.administers(owner_group.domain.name):
            raise Forbidden("only superadmins and domain admins create group vfolders")
        owner_user, domain = None, owner_group.domain
    elif "domain" in f:
        raise InvalidInput("domain: only group vfolders name a domain", field="domain")
    check_host(s, who, host, H.CREATE_VFOLDER, owner_group)
    kind, policy = L.owner_limits(owner_user, owner_group)
    owner_name = owner_user.username if owner_user else owner_group.name
    okey = L.owner_key(owner_user, owner_group)
    L.check_count(s, okey, kind, policy, owner_name)
    capped = L.check_quota(kind, policy, f["quota"], owner_name)
    quota = L.check_scope(s, okey, kind, policy, f["quota"], owner_name, default=capped)
    storage.check_quota(quota)
    if _name_taken(s, okey, name):
        raise Conflict(f"vfolder {name!r} already exists for {kind} {owner_name!r}", field="name")
    vf = VFolder(id=uuid.uuid4().hex, name=name, live_name=name, owner_key=okey, host=host, domain=domain,
                 user=owner_user, group=owner_group, creator_id=user.id, usage_mode=f["usage_mode"],
                 permission=f["permission"], cloneable=f["cloneable"], is_public=f["public"], quota=quota,
                 status=VFolderStatus.ready, grants=[])
    s.add(vf)
    flush_or_conflict(s, f"vfolder {name!r}")
    storage.create(host, vf.id, quota)
    return vf, access_of(who, vf)


def update(s: Session, storage: StorageHosts, who: A.SubjectLike, ref: Any,
           data: Mapping[str, Any]) -> tuple[VFolder, A.Access]:
    """Rename, or change usage mode, group permission, cloneable, public, quota."""
    f = FL.parse(data, FL.UPDATE)
    vf, _ = find(s, who, ref, "rename" if set(f) <= {"name"} else "update")
    if "name" in f and f["name"] != vf.name:
        if _name_taken(s, vf.owner_key, f["name"], exclude=vf.id):
            raise Conflict(f"vfolder {f['name']!r} already exists for this owner", field="name")
        vf.name = vf.live_name = f["name"]
    if "usage_mode" in f:
        vf.usage_mode = f["usage_mode"]
    if "permission" in f:
        if vf.group_id is None:
            raise InvalidInput("permission: only group vfolders have a member permission; invite users "
                               "to a user vfolder with one", field="permission")
        vf.permission = f["permission"]
    if "cloneable" in f:
        vf.cloneable = f["cloneable"]
    if "public" in f:
        vf.is_public = f["public"]
    if "quota" in f:
        vf.quota = _resize(s, storage, vf, f["quota"])
    flush_or_conflict(s, f"vfolder {vf.name!r}")
    return vf, access_of(who, vf)


def _resize(s: Session, storage: StorageHosts, vf: VFolder, quota: int | None) -> int | None:
    """The folder's new quota, checked against its owner's policy and its usage, and applied on disk."""
    kind, policy = L.owner_limits(vf.user, vf.group)
    owner_name = vf.user.username if vf.user else vf.group.name
    capped = L.check_quota(kind, policy, quota, owner_name)
    if quota is None or vf.quota is None or quota > vf.quota:
        quota = L.check_scope(s, vf.owner_key, kind, policy, quota, owner_name, exclude=vf.id, default=capped)
    else:
        quota = capped
    storage.check_quota(quota)
    if quota is not None:
        used, _ = usage(storage.ready_path(vf.host, vf.id))
        if used > quota:
            raise Conflict(f"quota: the folder already holds {used} bytes, more than {quota}", field="quota")
    storage.resize(vf.host, vf.id, quota)
    return quota


def check_unmounted(name: str, session_ids: Sequence[int], what: str) -> None:
    """A folder mounted in live sessions (``session_ids``) is neither deleted nor purged."""
    if session_ids:
        ids = ", ".join(str(i) for i in session_ids[:5])
        raise Conflict(f"vfolder {name!r} is mounted in {len(session_ids)} running session(s) ({ids}); "
                       f"stop them before you {what} it")


def _refuse_if_mounted(s: Session, vf: VFolder, what: str) -> None:
    check_unmounted(vf.name, [k.id for k in live_mounts(s, vf)], what)


def delete(s: Session, who: A.SubjectLike, ref: Any) -> VFolder:
    """Move to the trash (recoverable): refused while a running session mounts the folder."""
    vf, _ = find(s, who, ref, "delete")
    _refuse_if_mounted(s, vf, "delete")
    vf.status, vf.live_name, vf.trashed_at = VFolderStatus.trashed, None, utcnow()
    for inv in s.scalars(select(VFolderInvitation).where(VFolderInvitation.vfolder_id == vf.id,
                                                         VFolderInvitation.state == InvitationState.pending)):
        inv.state, inv.modified_at = InvitationState.canceled, utcnow()
    s.flush()
    return vf


def restore(s: Session, who: A.SubjectLike, ref: Any) -> tuple[VFolder, A.Access]:
    vf, _ = find(s, who, ref, "restore")
    if _name_taken(s, vf.owner_key, vf.name):
        raise Conflict(f"vfolder {vf.name!r} already exists again; rename that one first", field="name")
    kind, policy = L.owner_limits(vf.user, vf.group)
    L.check_count(s, vf.owner_key, kind, policy, vf.user.username if vf.user else vf.group.name)
    vf.status, vf.live_name, vf.trashed_at = VFolderStatus.ready, vf.name, None
    flush_or_conflict(s, f"vfolder {vf.name!r}")
    return vf, access_of(who, vf)


def purge(s: Session, storage: StorageHosts, who: A.SubjectLike, ref: Any) -> None:
    """Delete a trashed folder and its data for good."""
    vf, _ = find(s, who, ref, "purge")
    _refuse_if_mounted(s, vf, "purge")
    host, vfid = vf.host, vf.id
    s.delete(vf)
    s.flush()
    storage.destroy(host, vfid)
