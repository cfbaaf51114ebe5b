"""Invitations to user folders: invite by email or username, list, accept or reject, cancel."""

from __future__ import annotations

import uuid
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import tenancy as T
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import (
    InvitationState,
    User,
    VFolderGrant,
    VFolderInvitation,
    VFolderPermission,
    VFolderStatus,
    utcnow,
)
from . import fields as FL
from . import permissions as A
from .lookup import find, users_by


def invitation_to_dict(inv: VFolderInvitation) -> dict:
    return {"id": inv.id, "vfolder": inv.vfolder_id, "vfolder_name": inv.vfolder.name,
            "inviter": inv.inviter.username, "inviter_email": inv.inviter.email,
            "invitee": inv.invitee.username, "invitee_email": inv.invitee.email,
            "permission": inv.permission.value, "state": inv.state.value,
            "created_at": inv.created_at.isoformat() if inv.created_at else None}


def check_invitable(name: str, group: str | None) -> None:
    """Only user folders take invitations (a group folder, ``group``'s, is shared with its members)."""
    if group is not None:
        raise InvalidInput(f"vfolder {name!r} belongs to group {group!r}: share it with its "
                           "members instead of inviting", field="vfolder")


def invite(s: Session, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> list[VFolderInvitation]:
    f = FL.parse(data, FL.INVITE)
    vf, _ = find(s, who, ref, "invite")
    check_invitable(vf.name, vf.group.name if vf.group_id is not None else None)
    perm = f.get("permission", VFolderPermission.rw)
    field, names = FL.named_users(f)
    invitees = users_by(s, who, names, field)
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
    inv = s.get(VFolderInvitation, inv_id) if isinstance(inv_id, str) and FL.HEX32_RE.match(inv_id) else None
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
    inv.modified_at = utcnow()
    s.flush()
    return inv


def cancel_invitation(s: Session, who: A.SubjectLike, inv_id: Any) -> VFolderInvitation:
    inv, me = _invitation(s, who, inv_id)
    if me.id == inv.invitee_id and me.id not in (inv.inviter_id, inv.vfolder.user_id):
        raise Forbidden("only the inviter or the owner cancels an invitation; reject it instead")
    inv.state, inv.modified_at = InvitationState.canceled, utcnow()
    s.flush()
    return inv
