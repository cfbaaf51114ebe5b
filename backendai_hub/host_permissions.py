"""PURE: storage-host permissions (Backend.AI's VFolderHostPermission) and how levels' grants merge.

What a domain, a group or a keypair policy grants on a storage host. ``allowed_vfolder_hosts`` maps
host -> permissions; a plain list of hosts (rows written before permissions existed, or the
shorthand) grants every permission. A subject's grants are the union over their domain, their
groups (for a group folder: its group) and their keypair policy: what any level grants is allowed.
"""

from __future__ import annotations

from typing import Mapping

from .errors import Forbidden

CREATE_VFOLDER, MODIFY_VFOLDER, DELETE_VFOLDER = "create-vfolder", "modify-vfolder", "delete-vfolder"
MOUNT_IN_SESSION, UPLOAD_FILE, DOWNLOAD_FILE = "mount-in-session", "upload-file", "download-file"
INVITE_OTHERS, SET_USER_PERM = "invite-others", "set-user-specific-permission"
HOST_PERMISSIONS = (CREATE_VFOLDER, MODIFY_VFOLDER, DELETE_VFOLDER, MOUNT_IN_SESSION, UPLOAD_FILE, DOWNLOAD_FILE,
                    INVITE_OTHERS, SET_USER_PERM)

# operation (OPERATIONS, plus the transfers) -> the host permission it also needs
HOST_PERMISSION_OF: dict[str, str] = {
    "rename": MODIFY_VFOLDER,
    "update": MODIFY_VFOLDER,
    "delete": DELETE_VFOLDER,
    "restore": DELETE_VFOLDER,
    "purge": DELETE_VFOLDER,
    "mount": MOUNT_IN_SESSION,
    "upload": UPLOAD_FILE,
    "download": DOWNLOAD_FILE,
    "invite": INVITE_OTHERS,
    "share": SET_USER_PERM,
}


def host_grants(value: object) -> dict[str, frozenset[str]]:
    """A stored ``allowed_vfolder_hosts`` as host -> permissions (a list grants every permission)."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(h): frozenset(p for p in (perms or ()) if p in HOST_PERMISSIONS) for h, perms in value.items()}
    if isinstance(value, (list, tuple)):
        return {str(h): frozenset(HOST_PERMISSIONS) for h in value}
    return {}


def merge_host_grants(*values: object) -> dict[str, frozenset[str]]:
    """The union of several levels' grants."""
    out: dict[str, frozenset[str]] = {}
    for value in values:
        for host, perms in host_grants(value).items():
            out[host] = out.get(host, frozenset()) | perms
    return out


def check_host(grants: Mapping[str, frozenset[str]], host: str, permission: str, username: str) -> None:
    """Forbidden unless the union of ``username``'s levels grants ``permission`` on ``host``."""
    if permission in grants.get(host, frozenset()):
        return
    if host not in grants:
        allowed = ", ".join(sorted(h for h, p in grants.items() if p)) or "none"
        raise Forbidden(f"storage host {host!r} is not allowed for {username!r} (the union of domain, groups and "
                        f"keypair policy allows: {allowed})")
    raise Forbidden(f"storage host {host!r} does not grant {permission!r} to {username!r} (the union of domain, "
                    f"groups and keypair policy grants there: {', '.join(sorted(grants[host])) or 'nothing'})")
