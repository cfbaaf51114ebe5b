"""Who else reaches a folder: per-user permissions on group folders (share, unshare), collaborators, leave, kick."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import tenancy as T
from ..errors import InvalidInput, NotFound
from ..models import InvitationState, VFolderGrant, VFolderInvitation, VFolderPermission, utcnow
from . import fields as FL
from . import permissions as A
from .lookup import find, users_by


def check_shareable(name: str, is_group: bool) -> None:
    """Only group folders have per-user permissions for their group's members (a user folder invites)."""
    if not is_group:
        raise InvalidInput(f"vfolder {name!r} is a user vfolder: invite users to it instead of sharing",
                           field="vfolder")


def share(s: Session, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> list[dict]:
    """Per-user permission overrides for members of a group folder's group."""
    f = FL.parse(data, FL.SHARE)
    vf, _ = find(s, who, ref, "share")
    check_shareable(vf.name, vf.group_id is not None)
    perm = f.get("permission", VFolderPermission.rw)
    field, names = FL.named_users(f)
    users = users_by(s, who, names, field)
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
    f = FL.parse(data, FL.UNSHARE)
    vf, _ = find(s, who, ref, "share")
    if vf.group_id is None:
        raise InvalidInput(f"vfolder {vf.name!r} is a user vfolder: kick collaborators instead", field="vfolder")
    field, names = FL.named_users(f)
    for u in users_by(s, who, names, field):
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
    """Remove a collaborator: their grant and their pending invitations."""
    vf, _ = find(s, who, ref, "kick")
    u = users_by(s, who, FL.user_refs(username, "user"), "user")[0]
    grant = s.get(VFolderGrant, (vf.id, u.id))
    pending = list(s.scalars(select(VFolderInvitation).where(
        VFolderInvitation.vfolder_id == vf.id, VFolderInvitation.invitee_id == u.id,
        VFolderInvitation.state == InvitationState.pending)))
    if grant is None and not pending:
        raise NotFound(f"user {u.username!r} is not a collaborator of vfolder {vf.name!r}", field="user")
    if grant is not None:
        s.delete(grant)
    for inv in pending:
        inv.state, inv.modified_at = InvitationState.canceled, utcnow()
    s.flush()
