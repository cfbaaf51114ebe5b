"""PURE: who reaches a vfolder with which permission, and which operations that permission allows.

One function decides everything: :func:`effective_permission` looks at the subject (who asks),
the folder and its per-user grants, and returns an :class:`Access`. :func:`check` turns an
operation on it into the answer a user sees: 404 when the folder is invisible to them, 403
naming the rule when they see it but may not do this.

Rules, in order:

* nothing crosses domains (a superadmin manages group folders of every domain, nothing more);
* the owner of a user folder has ``wd`` and manages it (rename, delete, invite, kick, publish);
* superadmins and the domain's admins manage the domain's group folders with ``wd``;
* a member of the owning group gets the folder's ``permission``, or their per-user override;
* an invitee who accepted gets the permission of their invitation;
* everyone in the domain gets ``ro`` on a public folder (unless a rule above gives more);
* a folder in the trash is visible only to those who manage it; a folder being cloned only shows its info.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from ..errors import Conflict, Forbidden, NotFound

RO, RW, WD = "ro", "rw", "wd"
_RANK = {None: 0, RO: 1, RW: 2, WD: 3}

# how a subject reaches the folder
OWNER, ADMIN, GROUP, OVERRIDE, INVITED, PUBLIC = "owner", "admin", "group", "override", "invited", "public"

READY, CLONING, TRASHED = "ready", "cloning", "delete-pending"

# operation -> the least permission it needs ("manage": owner or admin of a group folder)
OPERATIONS: dict[str, str] = {
    "info": RO,  # the folder's metadata (also in the trash)
    "read": RO,  # list files, download
    "mount": RO,  # a session mounts it (read-only when the permission is ro)
    "clone": RO,  # and the folder is cloneable, unless the caller manages it
    "write": RW,  # upload, mkdir, rename or move files
    "delete-files": WD,
    "leave": RO,  # only invitees leave
    "rename": "manage",
    "update": "manage",  # cloneable, public, group permission, quota
    "delete": "manage",  # to the trash
    "restore": "manage",
    "purge": "manage",
    "invite": "manage",
    "share": "manage",
    "kick": "manage",
}
# what may still be done to a folder in the trash
TRASH_OPERATIONS = frozenset({"info", "restore", "purge"})


class SubjectLike(Protocol):
    """What the rules need to know about who asks (the service's Principal fits)."""

    username: str
    domain: str
    groups: frozenset[str]

    @property
    def is_superadmin(self) -> bool: ...

    def administers(self, domain: str) -> bool: ...


@dataclass(frozen=True)
class Subject:
    """A user as the rules see them, for callers without a service Principal (spawner, CLI)."""

    username: str
    domain: str
    groups: frozenset[str] = field(default_factory=frozenset)
    role: str = "user"

    @property
    def is_superadmin(self) -> bool:
        return self.role == "superadmin"

    def administers(self, domain: str) -> bool:
        return self.is_superadmin or (self.role == "domain-admin" and domain == self.domain)


@dataclass(frozen=True)
class FolderView:
    """The facts of a folder the rules look at."""

    name: str
    domain: str
    owner_user: str | None = None  # exactly one of owner_user / owner_group
    owner_group: str | None = None
    permission: str = RW  # what group members get
    is_public: bool = False
    cloneable: bool = False
    status: str = READY

    @property
    def kind(self) -> str:
        return "user" if self.owner_user is not None else "group"


@dataclass(frozen=True)
class Access:
    """``perm`` None: the folder is invisible to the subject."""

    perm: str | None
    manage: bool = False
    via: str | None = None

    @property
    def visible(self) -> bool:
        return self.perm is not None or self.manage


NONE = Access(None)


def effective_permission(who: SubjectLike, folder: FolderView, grants: Mapping[str, str]) -> Access:
    """The subject's access to ``folder``; ``grants`` maps usernames to their per-user permission."""
    if folder.domain != who.domain and not who.is_superadmin:
        return NONE
    access = NONE
    if folder.owner_user is not None:
        if folder.owner_user == who.username and folder.domain == who.domain:
            access = Access(WD, manage=True, via=OWNER)
        elif who.username in grants and folder.domain == who.domain:
            access = Access(grants[who.username], via=INVITED)
    else:
        if who.administers(folder.domain):
            access = Access(WD, manage=True, via=ADMIN)
        elif folder.domain == who.domain and folder.owner_group in who.groups:
            if who.username in grants:
                access = Access(grants[who.username], via=OVERRIDE)
            else:
                access = Access(folder.permission, via=GROUP)
    if folder.is_public and folder.domain == who.domain and access.perm is None:
        access = Access(RO, manage=access.manage, via=PUBLIC)
    if folder.status == TRASHED and not access.manage:
        return NONE
    return access


def _describe(folder: FolderView, access: Access) -> str:
    return {
        OWNER: "you own it",
        ADMIN: f"you administer domain {folder.domain!r}",
        GROUP: f"group {folder.owner_group!r} members get {access.perm}",
        OVERRIDE: f"it is shared with you as {access.perm} in group {folder.owner_group!r}",
        INVITED: f"you were invited with {access.perm}",
        PUBLIC: "it is public in your domain (read-only)",
    }.get(access.via or "", "")


def check(who: SubjectLike, folder: FolderView, grants: Mapping[str, str], op: str) -> Access:
    """Access for ``op`` or an error: NotFound when invisible, Forbidden naming the rule, Conflict in trash."""
    if op not in OPERATIONS:
        raise ValueError(f"unknown vfolder operation {op!r}")
    access = effective_permission(who, folder, grants)
    if not access.visible:
        raise NotFound(f"unknown vfolder {folder.name!r}", field="vfolder")
    if folder.status == TRASHED and op not in TRASH_OPERATIONS:
        raise Conflict(f"vfolder {folder.name!r} is in the trash; restore it first")
    if folder.status == CLONING and op != "info":
        raise Conflict(f"vfolder {folder.name!r} is being cloned; it is usable once its status is ready")
    if folder.status != TRASHED and op in ("restore", "purge"):
        raise Conflict(f"vfolder {folder.name!r} is not in the trash; delete it first")
    need = OPERATIONS[op]
    if op == "leave":
        if access.via != INVITED:
            reason = ("you own it; delete it instead" if access.via == OWNER else
                      "you reach it through a group, not an invitation" if access.via in (GROUP, OVERRIDE) else
                      "you were not invited to it")
            raise Forbidden(f"cannot leave vfolder {folder.name!r}: {reason}")
        return access
    if need == "manage":
        if not access.manage:
            if folder.kind == "user":
                raise Forbidden(f"only the owner of vfolder {folder.name!r} may {op} it")
            raise Forbidden(f"only superadmins and admins of domain {folder.domain!r} may {op} "
                            f"group vfolder {folder.name!r}")
        return access
    if _RANK[access.perm] < _RANK[need]:
        raise Forbidden(f"vfolder {folder.name!r} is {access.perm} for you ({_describe(folder, access)}): "
                        f"{op} needs {need}")
    if op == "clone" and not folder.cloneable and not access.manage:
        raise Forbidden(f"vfolder {folder.name!r} is not cloneable; its owner may set cloneable=true")
    return access

