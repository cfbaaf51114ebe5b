"""Which folders a session mounts, where, and read-only or not: a pure builder and its DB edge."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, Forbidden, InvalidInput
from ..models import LIVE_STATUSES, KernelSession, User, VFolder, VFolderMount, VFolderStatus
from ..session_user import SESSION_HOME
from . import permissions as A
from .. import host_permissions as H
from .fields import HEX32_RE
from .lookup import host_grants_for, list_for
from .storage import StorageHosts

# folders that come along without being asked for: dot-folders the user owns or reaches through
# a group (".local" keeps `pip install --user` packages across sessions)
AUTO_VIA = frozenset({A.OWNER, A.GROUP, A.OVERRIDE})
_RANK = {A.OWNER: 0, A.ADMIN: 1, A.GROUP: 1, A.OVERRIDE: 1, A.INVITED: 2, A.PUBLIC: 3}


@dataclass(frozen=True)
class Mount:
    source: str  # on the host
    target: str  # in the container
    read_only: bool
    vfolder_id: str = ""
    name: str = ""
    host: str = ""  # the storage host, whose quota image must be mounted before the session starts

    def docker(self) -> dict:
        """The mount as docker-py's ``docker.types.Mount`` (a dict) for ``host_config["mounts"]``."""
        return {"Target": self.target, "Source": self.source, "Type": "bind", "ReadOnly": self.read_only}


@dataclass(frozen=True)
class Mountable:
    """A folder the user can reach (access.perm not None), as :func:`mounts_for` sees it."""

    id: str
    name: str
    path: str
    perm: str
    via: str
    host: str = ""


def mounts_for(requested: Sequence[str], folders: Sequence[Mountable], *, home: str = SESSION_HOME) -> list[Mount]:
    """Mounts of a session asking for ``requested`` (names or ids) among ``folders`` the user reaches.

    Dot-folders the user owns or reaches through a group are added unasked. A name the user
    reaches several ways resolves like everywhere else (own, then group, then invited, then
    public); two folders of the same rank are a conflict. ``ro`` folders mount read-only.
    """
    chosen: dict[str, Mountable] = {}
    for ref in requested:
        if HEX32_RE.match(ref):
            hits = [f for f in folders if f.id == ref]
        else:
            hits = sorted((f for f in folders if f.name == ref), key=lambda f: _RANK.get(f.via, 9))
        if not hits:
            raise InvalidInput(f"vfolders: no vfolder {ref!r} that you may mount", field="vfolders")
        if len(hits) > 1 and _RANK.get(hits[0].via, 9) == _RANK.get(hits[1].via, 9):
            raise Conflict(f"vfolders: several vfolders named {ref!r} are visible to you; name it by id "
                           f"({', '.join(f.id for f in hits[:5])})", field="vfolders")
        f = hits[0]
        if f.name in chosen and chosen[f.name].id != f.id:
            raise Conflict(f"vfolders: two vfolders would mount at {posixpath.join(home, f.name)}", field="vfolders")
        chosen[f.name] = f
    # the user's own dot-folder wins over a group's of the same name
    for f in sorted(folders, key=lambda f: _RANK.get(f.via, 9)):
        if f.name.startswith(".") and f.via in AUTO_VIA and f.name not in chosen:
            chosen[f.name] = f
    mounts = []
    for name in sorted(chosen):
        f = chosen[name]
        if f.perm is None:  # pragma: no cover - callers pass reachable folders only
            raise Forbidden(f"vfolder {name!r} is not yours to mount")
        mounts.append(Mount(source=f.path, target=posixpath.join(home, name), read_only=f.perm == A.RO,
                            vfolder_id=f.id, name=name, host=f.host))
    return mounts


def subject_of(user: User) -> A.Subject:
    return A.Subject(username=user.username, domain=user.domain.name,
                     groups=frozenset(g.name for g in user.groups), role=user.role.value)


def _user(s: Session, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise Forbidden(f"hub user {username!r} has no backendai-hub account")
    return user


def _reachable(s: Session, storage: StorageHosts, user: User) -> list[Mountable]:
    return [Mountable(id=vf.id, name=vf.name, path=storage.path(vf.host, vf.id), perm=acc.perm, via=acc.via,
                      host=vf.host)
            for vf, acc in list_for(s, subject_of(user))
            if acc.perm is not None and vf.status == VFolderStatus.ready]


def mountable(s: Session, storage: StorageHosts, username: str) -> list[dict]:
    """The folders a session of ``username`` may ask for (the spawn form's checklist): name, id, the
    permission it mounts with, how the user reaches it; dot-folders, which come unasked, say so."""
    user = _user(s, username)
    grants = host_grants_for(s, user)
    return [{"id": f.id, "name": f.name, "permission": f.perm, "via": f.via, "automatic": f.name.startswith(".")
             and f.via in AUTO_VIA}
            for f in sorted(_reachable(s, storage, user), key=lambda f: (f.name, _RANK.get(f.via, 9)))
            if H.MOUNT_IN_SESSION in grants.get(f.host, ())]


def plan_mounts(s: Session, storage: StorageHosts, username: str, requested: Sequence[str] = (), *,
                home: str = SESSION_HOME) -> list[Mount]:
    """The mounts a session of ``username`` would get, checked but without side effects.

    Reads only: refuses unknown, unreachable or unmountable folders with the reason, and neither
    mounts quota images nor records anything (see :func:`prepare_mounts`).
    """
    user = _user(s, username)
    folders = _reachable(s, storage, user)
    # the storage host must grant mount-in-session: a requested folder is refused with the reason,
    # a dot-folder (mounted without being asked for) is left out
    grants = host_grants_for(s, user)
    for f in folders:
        if f.name in requested:
            H.check_host(grants, f.host, H.MOUNT_IN_SESSION, username)
    folders = [f for f in folders if H.MOUNT_IN_SESSION in grants.get(f.host, ())]
    return mounts_for(list(requested), folders, home=home)


def prepare_mounts(s: Session, storage: StorageHosts, mounts: Sequence[Mount], session_id: int | None = None) -> None:
    """Make planned mounts real: quota images mounted on the host, and recorded for ``session_id``.

    Quota images are mounted first where a reboot unmounted them, so a session never writes into
    an unquoted directory. Recorded mounts keep the folders from being deleted while the session
    is live.
    """
    for m in mounts:
        vf = s.get(VFolder, m.vfolder_id)
        if vf is None or vf.status != VFolderStatus.ready:
            # what the plan would say now: a folder deleted since (a queued session waits) is gone
            raise InvalidInput(f"vfolders: no vfolder {m.name!r} that you may mount", field="vfolders")
    for m in mounts:
        storage.ready_path(m.host, m.vfolder_id)
    if session_id is not None:
        for m in mounts:
            s.merge(VFolderMount(session_id=session_id, vfolder_id=m.vfolder_id, target=m.target,
                                 read_only=m.read_only))
        s.flush()


def session_mounts(s: Session, storage: StorageHosts, username: str, requested: Sequence[str] = (), *,
                   session_id: int | None = None, home: str = SESSION_HOME) -> list[Mount]:
    """Plan and prepare in one go: the mounts of a session of ``username``, ready and recorded."""
    mounts = plan_mounts(s, storage, username, requested, home=home)
    prepare_mounts(s, storage, mounts, session_id)
    return mounts


@dataclass(frozen=True)
class Revoked:
    """A live session that mounts a folder its user may no longer mount as it is mounted."""

    session_id: int
    username: str
    server_name: str
    reason: str


def revoked_mounts(s: Session) -> list[Revoked]:
    """Live sessions whose mounts their users' access no longer covers, with the reason.

    A bind mount cannot be taken back from a running container, nor made read-only from outside
    it, so such a session must stop: access gone (kicked, unshared, left the group, folder made
    private, mount-in-session no longer granted) or reduced to ``ro`` under a read-write mount.
    """
    rows = s.scalars(select(VFolderMount).join(VFolderMount.session)
                     .where(KernelSession.status.in_(LIVE_STATUSES))
                     .order_by(VFolderMount.session_id, VFolderMount.target))
    by_user: dict[int, tuple[dict, dict]] = {}
    out: dict[int, Revoked] = {}
    for m in rows:
        session = m.session
        if session.id in out:
            continue
        user = session.user
        if user.id not in by_user:
            reach = {vf.id: acc for vf, acc in list_for(s, subject_of(user)) if acc.perm is not None}
            by_user[user.id] = (reach, host_grants_for(s, user))
        reach, grants = by_user[user.id]
        name = posixpath.basename(m.target)
        access = reach.get(m.vfolder_id)
        vf = s.get(VFolder, m.vfolder_id)
        if access is None or vf is None or H.MOUNT_IN_SESSION not in grants.get(vf.host, ()):
            reason = f"access to vfolder {name!r} was revoked"
        elif not m.read_only and access.perm == A.RO:
            reason = f"access to vfolder {name!r} was reduced to read-only"
        else:
            continue
        out[session.id] = Revoked(session.id, user.username, session.server_name, reason)
    return list(out.values())
