"""PURE: the fields vfolder requests carry and their parsers, in the tables operations apply once, at their edge."""

from __future__ import annotations

import re
from typing import Any, Mapping

from .. import policy as P
from .. import validation as V
from ..errors import InvalidInput
from ..models import VFolderPermission, VFolderUsageMode
from . import paths
from .storage import UPLOAD_DIR

# Backend.AI's rule: any characters but '/', at most 64; ours also keeps names usable as a
# path component under /home/work and in session options (spawner.options.VFOLDER_NAME_RE)
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# dot-folders are mounted into every session automatically; these would shadow what the
# image and the jail put in /home/work
RESERVED_NAMES = frozenset({".", "..", ".terminfo", ".jupyter", ".tmux.conf", ".ssh", ".local/share",
                            UPLOAD_DIR})
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")  # a folder's (or an invitation's) id
MAX_EMAILS = 100


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


permission = V.member(VFolderPermission)  # ro, rw, wd
usage_mode = V.member(VFolderUsageMode)  # general, data, model


def quota(value: Any, field: str = "quota") -> int | None:
    """Bytes (``10737418240`` or ``'10g'``); None: as much as the owner's policy allows."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: must be a byte count such as 10737418240 or '10g'", field=field)
    if isinstance(value, str):
        try:
            value = int(P.parse_amount("mem", value, field=field))
        except P.SlotError as e:
            raise InvalidInput(str(e), field=field) from None
    if not isinstance(value, int) or value <= 0 or value > V.INT64_MAX:
        raise InvalidInput(f"{field}: must be a positive byte count such as 10737418240 or '10g'", field=field)
    return value


def host(value: Any, field: str = "host") -> str | None:
    """A storage host name; None (or empty): the default host."""
    if not value:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a storage host name", field=field)
    return value


def ref(value: Any, field: str = "vfolder") -> str:
    """A folder's id or name, as a request names it."""
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidInput(f"{field}: must be a vfolder name or id", field=field)
    return value


def user_refs(value: Any, field: str) -> list[str]:
    """1 to :data:`MAX_EMAILS` emails or usernames (one may come as a string)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > MAX_EMAILS:
        raise InvalidInput(f"{field}: must be a list of 1 to {MAX_EMAILS} emails or usernames", field=field)
    for v in value:
        if not isinstance(v, str) or not v or len(v) > 320:
            raise InvalidInput(f"{field}: {v!r} is not an email or username", field=field)
    return value


def named_users(fields: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The field of parsed ``fields`` that names users (``emails``, else ``users``: one is required) and its names."""
    field = "emails" if "emails" in fields else "users"
    return field, fields[field] if field in fields else user_refs(None, field)


def entry(value: Any, field: str) -> str:
    """A path naming an entry inside a folder (not the folder itself), cleaned."""
    return paths.clean(value, field=field, allow_root=False)


def as_given(value: Any, field: str) -> Any:
    """A field checked by the operation itself (against the caller: another domain reads as unknown)."""
    return value


CREATE = {"name": check_name, "host": host, "usage_mode": usage_mode, "permission": permission,
          "group": V.opt_key, "domain": as_given, "cloneable": V.boolean, "public": V.boolean, "quota": quota}
# what a create without them gets (parsed as well: a missing name is refused by its parser)
CREATE_DEFAULTS = {"name": None, "host": None, "usage_mode": "general", "permission": "rw", "group": None,
                   "cloneable": False, "public": False, "quota": None}
UPDATE = {k: CREATE[k] for k in ("name", "usage_mode", "permission", "cloneable", "public", "quota")}
CLONE = {k: CREATE[k] for k in ("name", "host", "usage_mode", "cloneable", "quota")}
INVITE = {"emails": user_refs, "users": user_refs, "permission": permission}
SHARE = INVITE
UNSHARE = {"emails": user_refs, "users": user_refs}
MKDIR = {"path": entry, "parents": V.boolean, "exist_ok": V.boolean}
MKDIR_DEFAULTS = {"path": None, "parents": False, "exist_ok": False}
MOVE = {"src": entry, "dst": entry, "overwrite": V.boolean}
MOVE_DEFAULTS = {"src": None, "dst": None, "overwrite": False}


def parse(data: Any, table: Mapping[str, V.Parser], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``data`` (with ``defaults`` for what it leaves out) through ``table``: unknown fields are refused."""
    if defaults and isinstance(data, Mapping):
        data = {**defaults, **data}
    return V.parse(data, table)
