"""Finding what a request names: folders among those a subject sees, users of its domain, what storage hosts grant."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from .. import host_permissions as H
from .. import tenancy as T
from ..errors import Conflict, NotFound
from ..models import Group, KeyPair, User, VFolder, VFolderGrant, VFolderStatus
from . import permissions as A
from .fields import HEX32_RE
from .fields import ref as parse_ref


def view(vf: VFolder) -> A.FolderView:
    return A.FolderView(name=vf.name, domain=vf.domain.name, owner_user=vf.user.username if vf.user else None,
                        owner_group=vf.group.name if vf.group else None, permission=vf.permission.value,
                        is_public=vf.is_public, cloneable=vf.cloneable, status=vf.status.value)


def grants_of(vf: VFolder) -> dict[str, str]:
    return {g.user.username: g.permission.value for g in vf.grants}


def access_of(who: A.SubjectLike, vf: VFolder) -> A.Access:
    return A.effective_permission(who, view(vf), grants_of(vf))


def _loaded(q):
    """``q`` with what :func:`view` and :func:`grants_of` read loaded alongside (not a query per folder)."""
    return q.options(joinedload(VFolder.domain), joinedload(VFolder.user), joinedload(VFolder.group),
                     selectinload(VFolder.grants).joinedload(VFolderGrant.user))


def reach(user_id, group_ids, admin: bool):
    """The SQL condition on folders a user might see (a superset the rules then sift): their own, public,
    granted to them, and their groups' (``group_ids``) or, for an admin of the domain, every group's."""
    groups = VFolder.group_id.is_not(None) if admin else VFolder.group_id.in_(group_ids)
    invited = select(VFolderGrant.vfolder_id).where(VFolderGrant.user_id == user_id)
    return or_(VFolder.user_id == user_id, VFolder.is_public.is_(True), VFolder.id.in_(invited), groups)


def _reachable(s: Session, who: A.SubjectLike, q):
    """``q`` narrowed in SQL to the folders of the subject's domain it might reach (:func:`reach`;
    :func:`permissions.effective_permission` still decides each): without it every request read every
    folder of the domain, a cost that grew with the number of users. Superadmins, who see group folders
    of every domain, are not narrowed."""
    if who.is_superadmin:
        return q
    domain = T.domains.get(s, who.domain)
    me = select(User.id).where(User.username == who.username).scalar_subquery()
    mine = select(Group.id).where(Group.domain_id == domain.id, Group.name.in_(sorted(who.groups)))
    return q.where(VFolder.domain_id == domain.id, reach(me, mine, who.administers(who.domain)))


_VIA_RANK = {A.OWNER: 0, A.ADMIN: 1, A.OVERRIDE: 2, A.GROUP: 2, A.INVITED: 3, A.PUBLIC: 4}


def find(s: Session, who: A.SubjectLike, ref: Any, op: str = "info",
         host_perm: str | None = None) -> tuple[VFolder, A.Access]:
    """The folder ``ref`` (an id, or a name among the folders the subject sees) checked for ``op``,
    and for the storage-host permission the operation needs (``host_perm``, by default the one
    :data:`host_permissions.HOST_PERMISSION_OF` names for ``op``).

    By name, the subject's own folders win over group folders, those over invitations and public
    folders, and live folders over trashed ones; a tie is a 409 asking for the id.
    """
    vf, acc = _find(s, who, parse_ref(ref), op)
    host_perm = host_perm or H.HOST_PERMISSION_OF.get(op)
    if host_perm is not None:
        check_host(s, who, vf.host, host_perm, vf.group)
    return vf, acc


def _find(s: Session, who: A.SubjectLike, ref: str, op: str) -> tuple[VFolder, A.Access]:
    if HEX32_RE.match(ref):
        vf = s.get(VFolder, ref)
        if vf is None:
            raise NotFound(f"unknown vfolder {ref!r}", field="vfolder")
        A.check(who, view(vf), grants_of(vf), op)
        return vf, access_of(who, vf)
    named = _loaded(_reachable(s, who, select(VFolder).where(VFolder.name == ref)))
    seen = [(vf, access_of(who, vf)) for vf in s.scalars(named).unique()]
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
    q = _loaded(_reachable(s, who, select(VFolder).order_by(VFolder.name, VFolder.created_at)))
    out = []
    for vf in s.scalars(q).unique():
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


def users_by(s: Session, who: A.SubjectLike, names: Sequence[str], field: str) -> list[User]:
    """Users of the subject's domain named by email or username (parsed: :func:`fields.user_refs`);
    other domains read as unknown."""
    out: list[User] = []
    for v in names:
        col = User.email if "@" in v else User.username
        u = s.scalar(select(User).where(col == v.lower()))
        if u is None or u.domain.name != who.domain:
            raise NotFound(f"unknown user {v!r}", field=field)
        if u not in out:
            out.append(u)
    return out
