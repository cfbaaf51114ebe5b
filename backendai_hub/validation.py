"""PURE: parse a request's input once, at the edge, into typed values; bad input is a 400 naming the field.

Every parser takes the raw value and the field name it came in as and returns a typed value or
raises :class:`~backendai_hub.errors.InvalidInput`. Bounds are checked here and nowhere else: the
database's integer widths, infinities and NaN (``1e309`` in JSON), absurdly long numbers and
strings. :func:`parse` applies a table of field parsers to a mapping, refusing unknown fields.
"""

from __future__ import annotations

import enum
import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from . import egress as E
from . import policy as P
from .errors import InvalidInput
from .host_permissions import HOST_PERMISSIONS, host_grants

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DOMAIN_RE = USERNAME_RE  # lowercase: domain names become hub role names
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
ACCESS_KEY_RE = re.compile(r"^AKIA[A-Z2-7]{16}$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
HOST_RE = NAME_RE

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_NUMBER_TEXT = 40  # characters: more is no amount anyone means, and int() of it is slow

Parser = Callable[[Any, str], Any]


def check_unknown(data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse a field that is not in ``allowed`` (the first one, alphabetically)."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])


def parse(data: Any, fields: Mapping[str, Parser], *, what: str = "body") -> dict[str, Any]:
    """Each given field of ``data`` through its parser; unknown fields are refused."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what}: must be an object", field=what)
    check_unknown(data, fields)
    return {k: fields[k](v, k) for k, v in data.items()}


# -- scalars ---------------------------------------------------------------------------------------

def name(value: Any, field: str, pattern: re.Pattern = NAME_RE) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidInput(f"{field}: {value!r} is not a valid name (letters, digits, '.', '_', '-'; "
                           f"at most 64, starting with a letter or digit"
                           f"{'; lowercase' if pattern is USERNAME_RE else ''})", field=field)
    return value


def lower_name(value: Any, field: str) -> str:
    return name(value, field, USERNAME_RE)


def text(value: Any, field: str, max_len: int = 1000) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{field}: must be a string of at most {max_len} characters", field=field)
    return value


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: must be true or false", field=field)
    return value


def key(value: Any, field: str) -> str:
    """A lookup key from input: a string, or a clear 400 (never a type error deep in SQL)."""
    if not isinstance(value, str) or not value or len(value) > 320:
        raise InvalidInput(f"{field}: must be a name", field=field)
    return value


def opt_key(value: Any, field: str) -> str | None:
    """``None`` (unset) or a lookup key."""
    return None if value is None else key(value, field)


def access_key(value: Any, field: str = "access_key") -> str:
    if not isinstance(value, str) or not ACCESS_KEY_RE.match(value):
        raise InvalidInput(f"{field}: {value!r} is not an access key (AKIA + 16 characters)", field=field)
    return value


def email(value: Any, field: str = "email") -> str:
    if not isinstance(value, str) or not EMAIL_RE.match(value):
        raise InvalidInput(f"{field}: {value!r} is not an email address", field=field)
    return value.lower()


def password(value: Any, field: str = "password") -> str:
    if not isinstance(value, str) or len(value) < 8 or len(value) > 1024:
        raise InvalidInput(f"{field}: must be 8 to 1024 characters", field=field)
    return value


def choice(options: Iterable[str]) -> Parser:
    """A parser accepting one of ``options``."""
    options = tuple(options)

    def parse_choice(value: Any, field: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise InvalidInput(f"{field}: {value!r} is not one of {', '.join(options)}", field=field)
        return value

    return parse_choice


def member(cls: type[enum.Enum]) -> Parser:
    """A parser into the member of the enum ``cls`` that a value names."""
    values = ", ".join(m.value for m in cls)

    def parse_member(value: Any, field: str):
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise InvalidInput(f"{field}: {value!r} is not one of {values}", field=field) from None

    return parse_member


def timestamp(value: Any, field: str) -> datetime:
    """An ISO 8601 date or date-time (``2026-12-01``, ``2026-12-01T10:00:00+09:00``); no zone means UTC."""
    if not isinstance(value, str) or not value or len(value) > 40:
        raise InvalidInput(f"{field}: must be an ISO 8601 date or date-time", field=field)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 date or date-time", field=field) from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def integer(value: Any, field: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer within [minimum, maximum]: refuses booleans, fractions, infinities, NaN, huge numbers."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: must be an integer", field=field)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidInput(f"{field}: {value!r} is not an integer", field=field)
        value = int(value)
    elif isinstance(value, str):
        raw = value.strip()
        if len(raw) > MAX_NUMBER_TEXT or not re.fullmatch(r"[+-]?[0-9]+", raw):
            raise InvalidInput(f"{field}: {value[:MAX_NUMBER_TEXT]!r} is not an integer", field=field)
        value = int(raw)
    elif not isinstance(value, int):
        raise InvalidInput(f"{field}: {value!r} is not an integer", field=field)
    if value < minimum or value > maximum:
        raise InvalidInput(f"{field}: must be between {minimum} and {maximum}", field=field)
    return value


def opt_int(value: Any, field: str, *, minimum: int = 0) -> int | None:
    """``None`` (unlimited) or an integer >= minimum; byte fields (``*size``) take suffixes (``100g``).

    Byte fields are 64-bit in the database, counts and seconds 32-bit.
    """
    if value is None:
        return None
    if isinstance(value, str) and field.endswith("size"):
        if len(value) > MAX_NUMBER_TEXT:
            raise InvalidInput(f"{field}: {value[:MAX_NUMBER_TEXT]!r}… is not a size", field=field)
        try:
            value = int(P.parse_amount("mem", value, field=field))
        except P.SlotError as e:
            raise InvalidInput(str(e), field=field) from None
    return integer(value, field, minimum=minimum, maximum=INT64_MAX if field.endswith("size") else INT32_MAX)


def opt_int_from(minimum: int) -> Parser:
    return lambda value, field: opt_int(value, field, minimum=minimum)


# -- structured values -------------------------------------------------------------------------------

def slots(value: Any, field: str = "total_resource_slots") -> dict[str, str]:
    """Resource slots (``cpu=2,mem=4g`` or a mapping) as stored: slot -> exact decimal string."""
    try:
        return P.slots_to_json(P.parse_slots(value, allow_zero=True, field=field))
    except P.SlotError as e:
        raise InvalidInput(str(e), field=e.field.split(".")[0]) from None


def str_list(value: Any, field: str, pattern: re.Pattern = NAME_RE) -> list[str]:
    """A list (or comma-separated string) of distinct strings matching ``pattern``."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise InvalidInput(f"{field}: must be a list", field=field)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not pattern.match(item):
            raise InvalidInput(f"{field}: {item!r} is not valid", field=field)
        if item not in out:
            out.append(item)
    return out


def images(value: Any, field: str = "allowed_images") -> list[str]:
    return str_list(value, field, IMAGE_RE)


def _mapping_or_items(value: Any, field: str) -> Any:
    """A JSON object given as a string, or ``a,b,c`` split into items; anything else as it came."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidInput(f"{field}: not valid JSON", field=field) from None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def host_permissions(value: Any, field: str = "allowed_vfolder_hosts") -> dict[str, list[str]]:
    """Storage hosts and what they grant, as stored: host -> permissions.

    Accepted: a mapping host -> permissions (a list, ``"a+b"``/``"a,b"``, or ``"*"`` for all); a list
    of hosts or a comma-separated string, where each item is ``host`` (every permission) or
    ``host:perm+perm``; a JSON object in a string. Unknown host names or permissions are refused.
    """
    if value is None or value == "":
        return {}
    value = _mapping_or_items(value, field)
    if isinstance(value, (list, tuple)):
        pairs = []
        for item in value:
            if not isinstance(item, str):
                raise InvalidInput(f"{field}: {item!r} is not a host name", field=field)
            host, sep, perms = item.partition(":")
            pairs.append((host.strip(), perms if sep else "*"))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise InvalidInput(f"{field}: must be a list of hosts or a mapping host -> permissions", field=field)
    out: dict[str, list[str]] = {}
    for host, perms in pairs:
        if not isinstance(host, str) or not HOST_RE.match(host):
            raise InvalidInput(f"{field}: {host!r} is not a valid host name", field=field)
        if perms in ("*", "all", None):
            perms = list(HOST_PERMISSIONS)
        elif isinstance(perms, str):
            perms = [p.strip() for p in perms.replace("+", ",").split(",") if p.strip()]
        if not isinstance(perms, (list, tuple)):
            raise InvalidInput(f"{field}: the permissions of {host!r} must be a list", field=field)
        for perm in perms:
            if perm not in HOST_PERMISSIONS:
                raise InvalidInput(f"{field}: {perm!r} is not a storage-host permission (one of "
                                   f"{', '.join(HOST_PERMISSIONS)})", field=field)
        granted = set(out.get(host, ())) | set(perms)
        out[host] = [p for p in HOST_PERMISSIONS if p in granted]
    return out


def host_permissions_out(value: Any) -> dict[str, list[str]]:
    """A stored ``allowed_vfolder_hosts`` as the API shows it: host -> permissions in canonical order."""
    return {h: [p for p in HOST_PERMISSIONS if p in perms] for h, perms in host_grants(value).items()}


POLICY_KINDS = ("keypair", "user", "group")


def policy_names(value: Any, field: str = "allowed_resource_policies") -> dict[str, list[str]]:
    """Resource policies by kind, as stored: kind -> names.

    Accepted: a mapping kind -> names (a list or comma-separated), or ``kind:name`` items (a list or
    comma-separated string). Whether the named policies exist is the caller's check.
    """
    if value is None or value == "":
        return {}
    value = _mapping_or_items(value, field)
    if isinstance(value, (list, tuple)):
        pairs: list[tuple[Any, Any]] = []
        for item in value:
            kind, sep, policy = item.partition(":") if isinstance(item, str) else (item, "", "")
            if not sep:
                raise InvalidInput(f"{field}: {item!r} is not kind:name (kind: {', '.join(POLICY_KINDS)})",
                                   field=field)
            pairs.append((kind.strip(), [policy.strip()]))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise InvalidInput(f"{field}: must map keypair/user/group to policy names", field=field)
    out: dict[str, list[str]] = {}
    for kind, names in pairs:
        if kind not in POLICY_KINDS:
            raise InvalidInput(f"{field}: {kind!r} is not one of {', '.join(POLICY_KINDS)}", field=field)
        for n in str_list(names, field):
            out.setdefault(kind, [])
            if n not in out[kind]:
                out[kind].append(n)
    return {k: out[k] for k in POLICY_KINDS if k in out}


def egress_mode(value: Any, field: str = "egress") -> str:
    if value not in E.POLICIES:
        raise InvalidInput(f"{field}: {value!r} is not one of {', '.join(E.POLICIES)}", field=field)
    return value


def egress_allowlist(value: Any, field: str = "egress_allowlist") -> list[str]:
    """``host:port`` entries (a list or comma-separated); each must parse as an allowlist entry."""
    if isinstance(value, str):
        value = [e.strip() for e in value.split(",") if e.strip()]
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise InvalidInput(f"{field}: must be a list of host:port", field=field)
    for entry in value:
        try:
            E.parse_allow_entry(entry)
        except ValueError as e:
            raise InvalidInput(f"{field}: {e}", field=field) from None
    return value


def egress(mode: str, entries: list[str]) -> tuple[str, list[str]]:
    """A mode and allowlist that go together (an allowlist only with ``allowlist``)."""
    try:
        E.EgressPolicy.parse(mode, entries)
    except ValueError as e:
        raise InvalidInput(f"egress_allowlist: {e}", field="egress_allowlist") from None
    return mode, entries
