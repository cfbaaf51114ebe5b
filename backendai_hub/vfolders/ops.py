"""Vfolder operations shared by the REST service, the spawner and tests.

Like :mod:`backendai_hub.tenancy`: every function takes an open session (one transaction owned
by the caller) and a subject (who asks: the service's Principal or an :class:`access.Subject`),
validates input before writing, checks :mod:`.access` rules, and raises the typed errors of
:mod:`backendai_hub.errors`. Filesystem work happens inside the same call; callers run it on an
executor thread, as they already do for the database.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import policy as P
from .. import tenancy as T
from .. import validation as V
from ..db import flush_or_conflict
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import (
    LIVE_STATUSES,
    Group,
    InvitationState,
    KernelSession,
    KeyPair,
    User,
    VFolder,
    VFolderGrant,
    VFolderInvitation,
    VFolderMount,
    VFolderPermission,
    VFolderStatus,
    VFolderUsageMode,
)
from . import access as A
from .. import host_permissions as H
from . import files as F
from .storage import UPLOAD_DIR, StorageHosts, usage, walk

# Backend.AI's rule: any characters but '/', at most 64; ours also keeps names usable as a
# path component under /home/work and in session options (spawner.options.VFOLDER_NAME_RE)
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# dot-folders are mounted into every session automatically; these would shadow what the
# image and the jail put in /home/work
RESERVED_NAMES = frozenset({".", "..", ".terminfo", ".jupyter", ".tmux.conf", ".ssh", ".local/share",
                            UPLOAD_DIR})
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_EMAILS = 100

CREATE_FIELDS = ("name", "host", "usage_mode", "permission", "group", "domain", "cloneable", "public", "quota")
UPDATE_FIELDS = ("name", "usage_mode", "permission", "cloneable", "public", "quota")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- validation -----------------------------------------------------------------------------------

def check_name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(f"{field}: {value!r} is not a valid vfolder name (letters, digits, '.', '_', '-'; "
                           f"1 to 64; no '/')", field=field)
    if value in RESERVED_NAMES or value.startswith(".."):
        raise InvalidInput(f"{field}: {value!r} is reserved", field=field)
    if HEX32_RE.match(value):
        raise InvalidInput(f"{field}: {value!r} looks like a vfolder id (32 hex digits); choose another name",
                           field=field)
    return value


def _perm(value: Any, field: str = "permission") -> VFolderPermission:
    try:
        return VFolderPermission(value)
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not one of ro, rw, wd", field=field) from None


def _usage_mode(value: Any) -> VFolderUsageMode:
    try:
        return VFolderUsageMode(value)
    except ValueError:
        raise InvalidInput(f"usage_mode: {value!r} is not one of general, data, model", field="usage_mode") from None


def _quota(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput("quota: must be a byte count such as 10737418240 or '10g'", field="quota")
    if isinstance(value, str):
        try:
            value = int(P.parse_amount("mem", value, field="quota"))
        except P.SlotError as e:
            raise InvalidInput(str(e), field="quota") from None
    if not isinstance(value, int) or value <= 0 or value > V.INT64_MAX:
        raise InvalidInput("quota: must be a positive byte count such as 10737418240 or '10g'", field="quota")
    return value


def _ref(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidInput("vfolder: must be a vfolder name or id", field="vfolder")
    return value


# -- views ------------------------------------------------------------------------------------------

def view(vf: VFolder) -> A.FolderView:
    return A.FolderView(name=vf.name, domain=vf.domain.name, owner_user=vf.user.username if vf.user else None,
                        owner_group=vf.group.name if vf.group else None, permission=vf.permission.value,
                        is_public=vf.is_public, cloneable=vf.cloneable, status=vf.status.value)


def grants_of(vf: VFolder) -> dict[str, str]:
    return {g.user.username: g.permission.value for g in vf.grants}


def access_of(who: A.SubjectLike, vf: VFolder) -> A.Access:
    return A.effective_permission(who, view(vf), grants_of(vf))


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


# -- lookups ----------------------------------------------------------------------------------------

_VIA_RANK = {A.OWNER: 0, A.ADMIN: 1, A.OVERRIDE: 2, A.GROUP: 2, A.INVITED: 3, A.PUBLIC: 4}


def find(s: Session, who: A.SubjectLike, ref: Any, op: str = "info",
         host_perm: str | None = None) -> tuple[VFolder, A.Access]:
    """The folder ``ref`` (an id, or a name among the folders the subject sees) checked for ``op``,
    and for the storage-host permission the operation needs (``host_perm``, by default the one
    :data:`access.HOST_PERMISSION_OF` names for ``op``).

    By name, the subject's own folders win over group folders, those over invitations and public
    folders, and live folders over trashed ones; a tie is a 409 asking for the id.
    """
    vf, acc = _find(s, who, ref, op)
    host_perm = host_perm or H.HOST_PERMISSION_OF.get(op)
    if host_perm is not None:
        check_host(s, who, vf.host, host_perm, vf.group)
    return vf, acc


def _find(s: Session, who: A.SubjectLike, ref: Any, op: str) -> tuple[VFolder, A.Access]:
    ref = _ref(ref)
    if HEX32_RE.match(ref):
        vf = s.get(VFolder, ref)
        if vf is None:
            raise NotFound(f"unknown vfolder {ref!r}", field="vfolder")
        A.check(who, view(vf), grants_of(vf), op)
        return vf, access_of(who, vf)
    seen = [(vf, access_of(who, vf)) for vf in s.scalars(select(VFolder).where(VFolder.name == ref))]
    seen = [(vf, acc) for vf, acc in seen if acc.visible]
    if not seen:
        raise NotFound(f"unknown vfolder {ref!r}", field="vfolder")
    def rank(item):
        return _VIA_RANK.get(item[1].via, 9), item[0].status == VFolderStatus.trashed
    seen.sort(key=rank)
    if len(seen) > 1 and rank(seen[0]) == rank(seen[1]):
        raise Conflict(f"several vfolders named {ref!r} are visible to you; name it by id "
                       f"({', '.join(vf.id for vf, _ in seen[:5])})", field="vfolder")
    vf = seen[0][0]
    A.check(who, view(vf), grants_of(vf), op)
    return vf, seen[0][1]


def list_for(s: Session, who: A.SubjectLike, *, trash: bool = False) -> list[tuple[VFolder, A.Access]]:
    """Folders the subject sees: own, group, invited, public (or, with ``trash``, those in the trash)."""
    q = select(VFolder).order_by(VFolder.name, VFolder.created_at)
    if not who.is_superadmin:
        q = q.where(VFolder.domain_id == T.domains.get(s, who.domain).id)
    out = []
    for vf in s.scalars(q):
        acc = access_of(who, vf)
        if not acc.visible or (vf.status == VFolderStatus.trashed) != trash:
            continue
        if who.is_superadmin and vf.domain.name != who.domain and acc.via == A.ADMIN and not trash:
            # superadmins manage group folders everywhere, but their list is their own domain's
            continue
        out.append((vf, acc))
    return out


def host_grants_for(s: Session, user: User, access_key: str | None = None,
                    group: Group | None = None) -> dict[str, frozenset[str]]:
    """What the storage hosts grant the user: the union over their domain, their groups (and
    ``group``, the owner of a group folder, whether or not they are a member) and the keypair policy
    (all their active keypairs' when they signed in with a hub token)."""
    levels = [user.domain.allowed_vfolder_hosts, *(g.allowed_vfolder_hosts for g in user.groups)]
    if group is not None:
        levels += [group.allowed_vfolder_hosts, group.domain.allowed_vfolder_hosts]
    kps = [s.get(KeyPair, access_key)] if access_key else list(user.keypairs)
    levels += [kp.resource_policy.allowed_vfolder_hosts for kp in kps if kp is not None and kp.is_active]
    return H.merge_host_grants(*levels)


def check_host(s: Session, who: A.SubjectLike, host: str, permission: str, group: Group | None = None) -> None:
    """Forbidden unless the subject's levels grant ``permission`` on ``host``."""
    grants = host_grants_for(s, T.users.get(s, who.username), getattr(who, "access_key", None), group)
    H.check_host(grants, host, permission, who.username)


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


# -- create, update, delete -------------------------------------------------------------------------

def _count_live(s: Session, owner_key: str) -> int:
    return s.scalar(select(func.count()).select_from(VFolder)
                    .where(VFolder.owner_key == owner_key, VFolder.status != VFolderStatus.trashed)) or 0


def _owner_limits(vf_user: User | None, vf_group: Group | None):
    if vf_user is not None:
        return "user", vf_user.resource_policy
    return "group", vf_group.resource_policy


def _check_count(s: Session, owner_key: str, kind: str, policy, owner_name: str) -> None:
    if policy is None or policy.max_vfolder_count is None:
        return
    used = _count_live(s, owner_key)
    if used >= policy.max_vfolder_count:
        raise Forbidden(f"{kind} resource policy {policy.name!r} allows max_vfolder_count="
                        f"{policy.max_vfolder_count} for {kind} {owner_name!r}, {used} in use")


def _check_quota(kind: str, policy, quota: int | None, owner_name: str) -> int | None:
    limit = policy.max_quota_size if policy is not None else None
    if limit is None:
        return quota
    if quota is None:
        return limit  # a folder under a capped policy is never unlimited
    if quota > limit:
        raise Forbidden(f"{kind} resource policy {policy.name!r} allows max_quota_size="
                        f"{P.format_amount('mem', limit)} per vfolder of {kind} {owner_name!r}; "
                        f"asked {P.format_amount('mem', quota)}")
    return quota


def _check_scope(s: Session, owner_key: str, kind: str, policy, quota: int | None, owner_name: str,
                 exclude: str | None = None, default: int | None = None) -> int | None:
    """The quota scope (``max_quota_scope_size``): the quotas of all the owner's folders, those in the
    trash included, add up to at most the scope size. Each folder's quota is a hard limit inside
    sessions too (loopback images), so the owner's total is. A folder asked without a quota gets
    what is left (at most ``default``, the per-folder cap); folders that have none (made before the
    policy had a scope size) count as 0."""
    scope = policy.max_quota_scope_size if policy is not None else None
    if scope is None:
        return default if quota is None else quota
    rows = [(name, q) for vid, name, q in s.execute(select(VFolder.id, VFolder.name, VFolder.quota)
                                                    .where(VFolder.owner_key == owner_key)).all() if vid != exclude]
    allotted = sum(q or 0 for _, q in rows)
    left = max(scope - allotted, 0)
    fmt = lambda n: P.format_amount("mem", Decimal(n))  # noqa: E731
    if quota is None:
        quota = min(left, default) if default is not None else left
    if quota == 0 or quota > left:
        shown = ", ".join(f"{name} {fmt(q)}" for name, q in rows if q) or "none"
        raise Forbidden(f"{kind} resource policy {policy.name!r} allows max_quota_scope_size={fmt(scope)} for "
                        f"{kind} {owner_name!r}: {fmt(allotted)} allotted to its vfolders ({shown}), "
                        f"{fmt(left)} left" + (f", {fmt(quota)} asked" if quota else ""))
    return quota


def _owner_key(user: User | None, group: Group | None) -> str:
    return f"u:{user.id}" if user is not None else f"g:{group.id}"


def _name_taken(s: Session, owner_key: str, name: str, exclude: str | None = None) -> bool:
    q = select(VFolder.id).where(VFolder.owner_key == owner_key, VFolder.live_name == name)
    if exclude:
        q = q.where(VFolder.id != exclude)
    return s.scalar(q) is not None


def create(s: Session, storage: StorageHosts, who: A.SubjectLike, data: Mapping[str, Any]) -> tuple[VFolder, A.Access]:
    V.check_unknown(data, CREATE_FIELDS)
    name = check_name(data.get("name"))
    user = T.users.get(s, who.username)
    host = data.get("host") or storage.default_host
    if not isinstance(host, str):
        raise InvalidInput("host: must be a storage host name", field="host")
    storage.root(host)  # 400 for an unknown host
    usage_mode = _usage_mode(data.get("usage_mode", "general"))
    permission = _perm(data.get("permission", "rw"))
    cloneable = V.boolean(data.get("cloneable", False), "cloneable")
    public = V.boolean(data.get("public", False), "public")
    quota = _quota(data.get("quota"))
    owner_user, owner_group = user, None
    domain = user.domain
    if data.get("group") is not None:
        dname = data.get("domain", who.domain)
        if dname != who.domain and not who.is_superadmin:
            raise NotFound(f"unknown domain {dname!r}", field="domain")
        owner_group = T.groups.get(s, dname, data["group"])
        if not (who.administers(owner_group.domain.name) or
                (owner_group.domain.name == who.domain and owner_group.name in who.groups)):
            raise NotFound(f"unknown group {owner_group.name!r} in domain {dname!r}", field="group")
        if not who.administers(owner_group.domain.name):
            raise Forbidden("only superadmins and domain admins create group vfolders")
        owner_user, domain = None, owner_group.domain
    elif "domain" in data:
        raise InvalidInput("domain: only group vfolders name a domain", field="domain")
    check_host(s, who, host, H.CREATE_VFOLDER, owner_group)
    kind, policy = _owner_limits(owner_user, owner_group)
    owner_name = owner_user.username if owner_user else owner_group.name
    okey = _owner_key(owner_user, owner_group)
    _check_count(s, okey, kind, policy, owner_name)
    capped = _check_quota(kind, policy, quota, owner_name)
    quota = _check_scope(s, okey, kind, policy, quota, owner_name, default=capped)
    storage.check_quota(quota)
    if _name_taken(s, okey, name):
        raise Conflict(f"vfolder {name!r} already exists for {kind} {owner_name!r}", field="name")
    vf = VFolder(id=uuid.uuid4().hex, name=name, live_name=name, owner_key=okey, host=host, domain=domain,
                 user=owner_user, group=owner_group, creator_id=user.id, usage_mode=usage_mode,
                 permission=permission, cloneable=cloneable, is_public=public, quota=quota,
                 status=VFolderStatus.ready, grants=[])
    s.add(vf)
    flush_or_conflict(s, f"vfolder {name!r}")
    storage.create(host, vf.id, quota)
    return vf, access_of(who, vf)


def update(s: Session, storage: StorageHosts, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> tuple[VFolder, A.Access]:
    """Rename, or change usage mode, group permission, cloneable, public, quota."""
    V.check_unknown(data, UPDATE_FIELDS)
    vf, _ = find(s, who, ref, "rename" if set(data) <= {"name"} else "update")
    if "name" in data and data["name"] != vf.name:
        new = check_name(data["name"])
        if _name_taken(s, vf.owner_key, new, exclude=vf.id):
            raise Conflict(f"vfolder {new!r} already exists for this owner", field="name")
        vf.name = vf.live_name = new
    if "usage_mode" in data:
        vf.usage_mode = _usage_mode(data["usage_mode"])
    if "permission" in data:
        if vf.group_id is None:
            raise InvalidInput("permission: only group vfolders have a member permission; invite users "
                               "to a user vfolder with one", field="permission")
        vf.permission = _perm(data["permission"])
    if "cloneable" in data:
        vf.cloneable = V.boolean(data["cloneable"], "cloneable")
    if "public" in data:
        vf.is_public = V.boolean(data["public"], "public")
    if "quota" in data:
        quota = _quota(data["quota"])
        kind, policy = _owner_limits(vf.user, vf.group)
        owner_name = vf.user.username if vf.user else vf.group.name
        capped = _check_quota(kind, policy, quota, owner_name)
        if quota is None or vf.quota is None or quota > vf.quota:
            quota = _check_scope(s, vf.owner_key, kind, policy, quota, owner_name, exclude=vf.id, default=capped)
        else:
            quota = capped
        storage.check_quota(quota)
        if quota is not None:
            used, _ = usage(storage.ready_path(vf.host, vf.id))
            if used > quota:
                raise Conflict(f"quota: the folder already holds {used} bytes, more than {quota}", field="quota")
        storage.resize(vf.host, vf.id, quota)
        vf.quota = quota
    flush_or_conflict(s, f"vfolder {vf.name!r}")
    return vf, access_of(who, vf)


def _refuse_if_mounted(s: Session, vf: VFolder, what: str) -> None:
    sessions = live_mounts(s, vf)
    if sessions:
        ids = ", ".join(str(k.id) for k in sessions[:5])
        raise Conflict(f"vfolder {vf.name!r} is mounted in {len(sessions)} running session(s) ({ids}); "
                       f"stop them before you {what} it")


def delete(s: Session, who: A.SubjectLike, ref: Any) -> VFolder:
    """Move to the trash (recoverable): refused while a running session mounts the folder."""
    vf, _ = find(s, who, ref, "delete")
    _refuse_if_mounted(s, vf, "delete")
    vf.status, vf.live_name, vf.trashed_at = VFolderStatus.trashed, None, _now()
    for inv in s.scalars(select(VFolderInvitation).where(VFolderInvitation.vfolder_id == vf.id,
                                                         VFolderInvitation.state == InvitationState.pending)):
        inv.state, inv.modified_at = InvitationState.canceled, _now()
    s.flush()
    return vf


def restore(s: Session, who: A.SubjectLike, ref: Any) -> tuple[VFolder, A.Access]:
    vf, _ = find(s, who, ref, "restore")
    if _name_taken(s, vf.owner_key, vf.name):
        raise Conflict(f"vfolder {vf.name!r} already exists again; rename that one first", field="name")
    kind, policy = _owner_limits(vf.user, vf.group)
    _check_count(s, vf.owner_key, kind, policy, vf.user.username if vf.user else vf.group.name)
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


# -- invitations (user folders) ---------------------------------------------------------------------

def invitation_to_dict(inv: VFolderInvitation) -> dict:
    return {"id": inv.id, "vfolder": inv.vfolder_id, "vfolder_name": inv.vfolder.name,
            "inviter": inv.inviter.username, "inviter_email": inv.inviter.email,
            "invitee": inv.invitee.username, "invitee_email": inv.invitee.email,
            "permission": inv.permission.value, "state": inv.state.value,
            "created_at": inv.created_at.isoformat() if inv.created_at else None}


def _users_by(s: Session, who: A.SubjectLike, values: Any, field: str) -> list[User]:
    """Users of the subject's domain named by email or username; other domains read as unknown."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values or len(values) > MAX_EMAILS:
        raise InvalidInput(f"{field}: must be a list of 1 to {MAX_EMAILS} emails or usernames", field=field)
    out: list[User] = []
    for v in values:
        if not isinstance(v, str) or not v or len(v) > 320:
            raise InvalidInput(f"{field}: {v!r} is not an email or username", field=field)
        col = User.email if "@" in v else User.username
        u = s.scalar(select(User).where(col == v.lower()))
        if u is None or u.domain.name != who.domain:
            raise NotFound(f"unknown user {v!r}", field=field)
        if u not in out:
            out.append(u)
    return out


def invite(s: Session, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> list[VFolderInvitation]:
    V.check_unknown(data, ("emails", "users", "permission"))
    vf, _ = find(s, who, ref, "invite")
    if vf.group_id is not None:
        raise InvalidInput(f"vfolder {vf.name!r} belongs to group {vf.group.name!r}: share it with its "
                           "members instead of inviting", field="vfolder")
    perm = _perm(data.get("permission", "rw"))
    field = "emails" if "emails" in data else "users"
    invitees = _users_by(s, who, data.get(field), field)
    me = T.users.get(s, who.username)
    granted = {g.user_id for g in vf.grants}
    out = []
    for u in invitees:
        if u.id == vf.user_id:
            raise InvalidInput(f"{field}: {u.email!r} owns the vfolder", field=field)
        if u.id in granted:
            raise Conflict(f"{u.email!r} already has access to vfolder {vf.name!r}; kick them first to change it",
                           field=field)
        pending = s.scalar(select(VFolderInvitation).where(
            VFolderInvitation.vfolder_id == vf.id, VFolderInvitation.invitee_id == u.id,
            VFolderInvitation.state == InvitationState.pending))
        if pending is not None:
            raise Conflict(f"{u.email!r} is already invited to vfolder {vf.name!r}", field=field)
        inv = VFolderInvitation(id=uuid.uuid4().hex, vfolder=vf, inviter=me, invitee=u, permission=perm,
                                state=InvitationState.pending)
        s.add(inv)
        out.append(inv)
    s.flush()
    return out


def list_invitations(s: Session, who: A.SubjectLike) -> dict[str, list[dict]]:
    me = T.users.get(s, who.username)
    def q(col):
        return [invitation_to_dict(i) for i in s.scalars(
            select(VFolderInvitation).where(col == me.id, VFolderInvitation.state == InvitationState.pending)
            .order_by(VFolderInvitation.created_at))]
    return {"incoming": q(VFolderInvitation.invitee_id), "outgoing": q(VFolderInvitation.inviter_id)}


def _invitation(s: Session, who: A.SubjectLike, inv_id: Any) -> tuple[VFolderInvitation, User]:
    me = T.users.get(s, who.username)
    inv = s.get(VFolderInvitation, inv_id) if isinstance(inv_id, str) and HEX32_RE.match(inv_id) else None
    if inv is None or me.id not in (inv.invitee_id, inv.inviter_id, inv.vfolder.user_id):
        raise NotFound(f"unknown invitation {inv_id!r}", field="invitation")
    if inv.state != InvitationState.pending:
        raise Conflict(f"invitation {inv_id!r} is already {inv.state.value}")
    return inv, me


def answer_invitation(s: Session, who: A.SubjectLike, inv_id: Any, accept: bool) -> VFolderInvitation:
    inv, me = _invitation(s, who, inv_id)
    if inv.invitee_id != me.id:
        raise Forbidden(f"only the invitee {inv.invitee.email!r} may {'accept' if accept else 'reject'} it")
    if accept:
        if inv.vfolder.status == VFolderStatus.trashed:
            raise Conflict(f"vfolder {inv.vfolder.name!r} is in the trash")
        grant = s.get(VFolderGrant, (inv.vfolder_id, me.id))
        if grant is None:
            s.add(VFolderGrant(vfolder=inv.vfolder, user=me, permission=inv.permission))
        else:
            grant.permission = inv.permission
    inv.state = InvitationState.accepted if accept else InvitationState.rejected
    inv.modified_at = _now()
    s.flush()
    return inv


def cancel_invitation(s: Session, who: A.SubjectLike, inv_id: Any) -> VFolderInvitation:
    inv, me = _invitation(s, who, inv_id)
    if me.id == inv.invitee_id and me.id not in (inv.inviter_id, inv.vfolder.user_id):
        raise Forbidden("only the inviter or the owner cancels an invitation; reject it instead")
    inv.state, inv.modified_at = InvitationState.canceled, _now()
    s.flush()
    return inv


# -- sharing (group folders), leaving, kicking -----------------------------------------------------

def share(s: Session, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> list[dict]:
    """Per-user permission overrides for members of a group folder's group."""
    V.check_unknown(data, ("emails", "users", "permission"))
    vf, _ = find(s, who, ref, "share")
    if vf.group_id is None:
        raise InvalidInput(f"vfolder {vf.name!r} is a user vfolder: invite users to it instead of sharing",
                           field="vfolder")
    perm = _perm(data.get("permission", "rw"))
    field = "emails" if "emails" in data else "users"
    users = _users_by(s, who, data.get(field), field)
    for u in users:
        if vf.group not in u.groups:
            raise InvalidInput(f"{field}: {u.username!r} is not a member of group {vf.group.name!r}", field=field)
    for u in users:
        grant = s.get(VFolderGrant, (vf.id, u.id))
        if grant is None:
            s.add(VFolderGrant(vfolder=vf, user=u, permission=perm))
        else:
            grant.permission = perm
    s.flush()
    s.refresh(vf)
    return collaborators(s, who, vf.id)


def unshare(s: Session, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> list[dict]:
    V.check_unknown(data, ("emails", "users"))
    vf, _ = find(s, who, ref, "share")
    if vf.group_id is None:
        raise InvalidInput(f"vfolder {vf.name!r} is a user vfolder: kick collaborators instead", field="vfolder")
    field = "emails" if "emails" in data else "users"
    for u in _users_by(s, who, data.get(field), field):
        grant = s.get(VFolderGrant, (vf.id, u.id))
        if grant is not None:
            s.delete(grant)
    s.flush()
    s.refresh(vf)
    return collaborators(s, who, vf.id)


def collaborators(s: Session, who: A.SubjectLike, ref: Any) -> list[dict]:
    vf, _ = find(s, who, ref, "kick")  # those who manage the folder see its collaborators
    out = [{"user": g.user.username, "email": g.user.email, "permission": g.permission.value, "state": "granted"}
           for g in sorted(vf.grants, key=lambda g: g.user.username)]
    for inv in s.scalars(select(VFolderInvitation).where(VFolderInvitation.vfolder_id == vf.id,
                                                         VFolderInvitation.state == InvitationState.pending)):
        out.append({"user": inv.invitee.username, "email": inv.invitee.email, "permission": inv.permission.value,
                    "state": "invited", "invitation": inv.id})
    return out


def leave(s: Session, who: A.SubjectLike, ref: Any) -> None:
    vf, _ = find(s, who, ref, "leave")
    me = T.users.get(s, who.username)
    s.delete(s.get(VFolderGrant, (vf.id, me.id)))
    s.flush()


def kick(s: Session, who: A.SubjectLike, ref: Any, username: Any) -> None:
    vf, _ = find(s, who, ref, "kick")
    u = _users_by(s, who, [username] if isinstance(username, str) else username, "user")[0]
    grant = s.get(VFolderGrant, (vf.id, u.id))
    pending = list(s.scalars(select(VFolderInvitation).where(
        VFolderInvitation.vfolder_id == vf.id, VFolderInvitation.invitee_id == u.id,
        VFolderInvitation.state == InvitationState.pending)))
    if grant is None and not pending:
        raise NotFound(f"user {u.username!r} is not a collaborator of vfolder {vf.name!r}", field="user")
    if grant is not None:
        s.delete(grant)
    for inv in pending:
        inv.state, inv.modified_at = InvitationState.canceled, _now()
    s.flush()


# -- clone ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CloneJob:
    """What :func:`start_clone` admitted: the copy still to be done (see clone.py)."""

    source: str
    target: str
    target_id: str
    src_path: str
    dst_path: str
    total_bytes: int
    total_files: int
    folder: dict  # the new folder (status cloning), as our API shows it


def start_clone(s: Session, storage: StorageHosts, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> CloneJob:
    """Check a clone of a cloneable folder (or one the caller manages) into a new folder of the caller's
    own, and create that folder with status ``cloning``; the copy itself is :func:`copy_tree`."""
    V.check_unknown(data, ("name", "host", "usage_mode", "cloneable", "quota"))
    src, _ = find(s, who, ref, "clone")
    src_path = storage.ready_path(src.host, src.id)
    used, files = _copied_size(src_path)
    new_data = {"usage_mode": src.usage_mode.value, **data}
    dst, acc = create(s, storage, who, new_data)
    if dst.quota is not None and used > dst.quota:
        raise Conflict(f"vfolder {src.name!r} holds {used} bytes, more than the new folder's quota "
                       f"{dst.quota}", field="quota")
    try:
        dst_path = storage.ready_path(dst.host, dst.id)
        free = storage.free_bytes(dst.host, dst.id)
        if free is not None and used > free:
            raise Conflict(f"vfolder {src.name!r} holds {used} bytes; storage host {dst.host!r} has {free} free",
                           field="host")
    except Exception:
        storage.destroy(dst.host, dst.id)  # the transaction rolls the row back; the directory goes too
        raise
    dst.status = VFolderStatus.cloning
    return CloneJob(source=src.name, target=dst.name, target_id=dst.id, src_path=src_path, dst_path=dst_path,
                    total_bytes=used, total_files=files, folder=to_dict(dst, acc))


def settle_clone(s: Session, storage: StorageHosts, vfid: str, ok: bool) -> None:
    """The end of a clone: the folder is ready, or (the copy failed) gone with its files."""
    vf = s.get(VFolder, vfid)
    if vf is None or vf.status != VFolderStatus.cloning:
        return
    if ok:
        vf.status = VFolderStatus.ready
        return
    host = vf.host
    s.delete(vf)
    s.flush()
    storage.destroy(host, vfid)


def drop_interrupted_clones(s: Session, storage: StorageHosts) -> list[str]:
    """Folders left ``cloning`` by a service that stopped mid-copy: removed (their sources are intact)."""
    gone = []
    for vf in s.scalars(select(VFolder).where(VFolder.status == VFolderStatus.cloning)):
        gone.append(vf.name)
        settle_clone(s, storage, vf.id, ok=False)
    return gone


def _copied_size(src: str) -> tuple[int, int]:
    """(bytes, files) a clone copies: regular files, not partial uploads."""
    size = count = 0
    uploads = os.path.join(src, UPLOAD_DIR)
    for entry in walk(src):
        if entry.path == uploads or entry.path.startswith(uploads + os.sep):
            continue
        if entry.is_file(follow_symlinks=False):
            try:
                size += entry.stat(follow_symlinks=False).st_size
                count += 1
            except OSError:
                continue
    return size, count


def copy_tree(storage: StorageHosts, src: str, dst: str,
              progress: Callable[[int, str], None] | None = None) -> None:
    """Copy a folder's files into a new folder, owned by the session user (files.copy_tree: nothing
    a session swaps in meanwhile is followed)."""
    owned = os.geteuid() == 0
    F.copy_tree(src, dst, uid=storage.uid if owned else None, gid=storage.gid if owned else None,
                progress=progress)
