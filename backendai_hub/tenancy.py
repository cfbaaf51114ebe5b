"""Tenancy operations (create/list/show/update/delete) shared by the CLI, fixtures and REST service.

Every function takes an open SQLAlchemy session (one transaction, owned by the caller), validates
its input fully before writing, and raises :mod:`backendai_hub.errors` types with a clear message.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import policy as P
from .errors import Conflict, InvalidInput, NotFound
from .keys import SecretBox, generate_keypair, hash_password
from .models import (
    Domain,
    Group,
    GroupResourcePolicy,
    KeyPair,
    KeyPairResourcePolicy,
    User,
    UserResourcePolicy,
    UserRole,
    UserStatus,
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DOMAIN_RE = USERNAME_RE  # lowercase: domain names become hub role names
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
ACCESS_KEY_RE = re.compile(r"^AKIA[A-Z2-7]{16}$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
HOST_RE = NAME_RE

POLICY_KINDS = {
    "keypair": KeyPairResourcePolicy,
    "user": UserResourcePolicy,
    "group": GroupResourcePolicy,
}
DEFAULT_KEYPAIR_POLICY = "default"


# -- validation helpers -------------------------------------------------------------------------

def _name(value: Any, field: str, pattern: re.Pattern = NAME_RE) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidInput(f"{field}: {value!r} is not a valid name (letters, digits, '.', '_', '-'; "
                           f"at most 64, starting with a letter or digit"
                           f"{'; lowercase' if pattern is USERNAME_RE else ''})", field=field)
    return value


def _text(value: Any, field: str, max_len: int = 1000) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{field}: must be a string of at most {max_len} characters", field=field)
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: must be true or false", field=field)
    return value


def _slots(value: Any, field: str = "total_resource_slots") -> dict[str, str]:
    try:
        return P.slots_to_json(P.parse_slots(value, allow_zero=True, field=field))
    except P.SlotError as e:
        raise InvalidInput(str(e), field=e.field.split(".")[0]) from None


def _str_list(value: Any, field: str, pattern: re.Pattern) -> list[str]:
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


def _host_grants(value: Any, field: str = "allowed_vfolder_hosts") -> dict[str, list[str]]:
    """Storage hosts and what they grant, stored as host -> permissions.

    Accepted: a mapping host -> permissions (a list, ``"a+b"``/``"a,b"``, or ``"*"`` for all); a list
    of hosts or a comma-separated string, where each item is ``host`` (every permission) or
    ``host:perm+perm``; a JSON object in a string. Unknown hosts names or permissions are refused.
    """
    from .vfolders.access import HOST_PERMISSIONS  # not at the top: vfolders imports this module

    if value is None or value == "":
        return {}
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput(f"{field}: not valid JSON", field=field) from None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
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


def _grants_out(value: Any) -> dict[str, list[str]]:
    from .vfolders.access import HOST_PERMISSIONS, host_grants

    return {h: [p for p in HOST_PERMISSIONS if p in perms] for h, perms in host_grants(value).items()}


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _key(value: Any, field: str) -> str:
    """A lookup key from input: a string, or a clear 400 (never a type error deep in SQL)."""
    if not isinstance(value, str) or not value or len(value) > 320:
        raise InvalidInput(f"{field}: must be a name", field=field)
    return value


def _opt_int(value: Any, field: str, *, minimum: int = 0) -> int | None:
    """``None`` (unlimited) or an integer >= minimum; accepts size suffixes for byte fields."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: must be an integer", field=field)
    if isinstance(value, str) and field.endswith("size"):
        try:
            value = int(P.parse_amount("mem", value, field=field))
        except P.SlotError as e:
            raise InvalidInput(str(e), field=field) from None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}: {value!r} is not an integer", field=field) from None
    if isinstance(value, float) and value != n:
        raise InvalidInput(f"{field}: {value!r} is not an integer", field=field)
    maximum = INT64_MAX if field.endswith("size") else INT32_MAX
    if n < minimum or n > maximum:
        raise InvalidInput(f"{field}: must be between {minimum} and {maximum}", field=field)
    return n


def _check_unknown(changes: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])


def _flush(s: Session, what: str) -> None:
    try:
        s.flush()
    except IntegrityError:
        raise Conflict(f"{what} conflicts with existing data") from None


# -- domains ------------------------------------------------------------------------------------

DOMAIN_FIELDS = ("name", "description", "is_active", "total_resource_slots", "allowed_images",
                 "allowed_vfolder_hosts")


def _apply_domain_like(obj: Domain | Group, data: Mapping[str, Any]) -> None:
    if "description" in data:
        obj.description = _text(data["description"], "description")
    if "is_active" in data:
        obj.is_active = _bool(data["is_active"], "is_active")
    if "total_resource_slots" in data:
        obj.total_resource_slots = _slots(data["total_resource_slots"])
    if "allowed_images" in data:
        obj.allowed_images = _str_list(data["allowed_images"], "allowed_images", IMAGE_RE)
    if "allowed_vfolder_hosts" in data:
        obj.allowed_vfolder_hosts = _host_grants(data["allowed_vfolder_hosts"])


def create_domain(s: Session, data: Mapping[str, Any]) -> Domain:
    _check_unknown(data, DOMAIN_FIELDS)
    name = _name(data.get("name"), "name", DOMAIN_RE)
    if s.scalar(select(Domain).where(Domain.name == name)):
        raise Conflict(f"domain {name!r} already exists", field="name")
    d = Domain(name=name, description="", is_active=True, total_resource_slots={}, allowed_images=[],
               allowed_vfolder_hosts={})
    _apply_domain_like(d, data)
    s.add(d)
    _flush(s, f"domain {name!r}")
    return d


def get_domain(s: Session, name: str) -> Domain:
    name = _key(name, "domain")
    d = s.scalar(select(Domain).where(Domain.name == name))
    if d is None:
        raise NotFound(f"unknown domain {name!r}", field="domain")
    return d


def list_domains(s: Session) -> list[Domain]:
    return list(s.scalars(select(Domain).order_by(Domain.name)))


def update_domain(s: Session, name: str, data: Mapping[str, Any]) -> Domain:
    _check_unknown(data, DOMAIN_FIELDS)
    d = get_domain(s, name)
    if "name" in data and data["name"] != d.name:
        new = _name(data["name"], "name", DOMAIN_RE)
        if s.scalar(select(Domain).where(Domain.name == new)):
            raise Conflict(f"domain {new!r} already exists", field="name")
        d.name = new
    _apply_domain_like(d, data)
    _flush(s, f"domain {d.name!r}")
    return d


def delete_domain(s: Session, name: str) -> None:
    d = get_domain(s, name)
    n_users = s.scalar(select(func.count()).select_from(User).where(User.domain_id == d.id))
    n_groups = s.scalar(select(func.count()).select_from(Group).where(Group.domain_id == d.id))
    if n_users or n_groups:
        raise Conflict(f"domain {name!r} still has {n_users} user(s) and {n_groups} group(s); "
                       "delete them first")
    s.delete(d)
    s.flush()


def domain_to_dict(d: Domain) -> dict:
    return {
        "name": d.name,
        "description": d.description,
        "is_active": d.is_active,
        "total_resource_slots": dict(d.total_resource_slots or {}),
        "allowed_images": list(d.allowed_images or []),
        "allowed_vfolder_hosts": _grants_out(d.allowed_vfolder_hosts),
        "created_at": d.created_at.isoformat() if d.created_at else None,
    }


# -- resource policies --------------------------------------------------------------------------

POLICY_FIELDS = {
    "keypair": ("name", "total_resource_slots", "max_concurrent_sessions", "max_session_lifetime",
                "idle_timeout", "allowed_vfolder_hosts", "egress", "egress_allowlist"),
    "user": ("name", "max_vfolder_count", "max_quota_size", "max_quota_scope_size"),
    "group": ("name", "max_vfolder_count", "max_quota_size", "max_quota_scope_size"),
}


def _policy_model(kind: str):
    if not isinstance(kind, str) or kind not in POLICY_KINDS:
        raise InvalidInput(f"kind: {kind!r} is not one of keypair, user, group", field="kind")
    return POLICY_KINDS[kind]


def _apply_policy(kind: str, p, data: Mapping[str, Any]) -> None:
    if "total_resource_slots" in data:
        p.total_resource_slots = _slots(data["total_resource_slots"])
    for f in ("max_concurrent_sessions",):
        if f in data:
            setattr(p, f, _opt_int(data[f], f, minimum=0))
    for f in ("max_session_lifetime", "idle_timeout"):
        if f in data:
            setattr(p, f, _opt_int(data[f], f, minimum=1))
    if "allowed_vfolder_hosts" in data:
        p.allowed_vfolder_hosts = _host_grants(data["allowed_vfolder_hosts"])
    for f in ("max_vfolder_count", "max_quota_size", "max_quota_scope_size"):
        if f in data:
            setattr(p, f, _opt_int(data[f], f, minimum=0))
    if "egress" in data or "egress_allowlist" in data:
        from .spawner.network import POLICIES, EgressPolicy

        mode = data.get("egress", p.egress or "none")
        entries = data.get("egress_allowlist", p.egress_allowlist or [])
        if isinstance(entries, str):
            entries = [e.strip() for e in entries.split(",") if e.strip()]
        if mode not in POLICIES:
            raise InvalidInput(f"egress: {mode!r} is not one of {', '.join(POLICIES)}", field="egress")
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise InvalidInput("egress_allowlist: must be a list of host:port", field="egress_allowlist")
        try:
            EgressPolicy.parse(mode, entries)
        except ValueError as e:
            raise InvalidInput(f"egress_allowlist: {e}", field="egress_allowlist") from None
        p.egress, p.egress_allowlist = mode, entries


def create_policy(s: Session, kind: str, data: Mapping[str, Any]):
    model = _policy_model(kind)
    _check_unknown(data, POLICY_FIELDS[kind])
    name = _name(data.get("name"), "name")
    if s.scalar(select(model).where(model.name == name)):
        raise Conflict(f"{kind} resource policy {name!r} already exists", field="name")
    p = model(name=name)
    if kind == "keypair":
        p.total_resource_slots, p.allowed_vfolder_hosts, p.egress, p.egress_allowlist = {}, {}, "none", []
    _apply_policy(kind, p, data)
    s.add(p)
    _flush(s, f"{kind} resource policy {name!r}")
    return p


def get_policy(s: Session, kind: str, name: str):
    model = _policy_model(kind)
    name = _key(name, "resource_policy")
    p = s.scalar(select(model).where(model.name == name))
    if p is None:
        raise NotFound(f"unknown {kind} resource policy {name!r}", field="policy")
    return p


def list_policies(s: Session, kind: str | None = None) -> list[tuple[str, Any]]:
    kinds = [kind] if kind else list(POLICY_KINDS)
    out = []
    for k in kinds:
        model = _policy_model(k)
        out.extend((k, p) for p in s.scalars(select(model).order_by(model.name)))
    return out


def update_policy(s: Session, kind: str, name: str, data: Mapping[str, Any]):
    _check_unknown(data, POLICY_FIELDS[_policy_kind_checked(kind)])
    p = get_policy(s, kind, name)
    model = POLICY_KINDS[kind]
    if "name" in data and data["name"] != p.name:
        new = _name(data["name"], "name")
        if s.scalar(select(model).where(model.name == new)):
            raise Conflict(f"{kind} resource policy {new!r} already exists", field="name")
        p.name = new
    _apply_policy(kind, p, data)
    _flush(s, f"{kind} resource policy {p.name!r}")
    return p


def _policy_kind_checked(kind: str) -> str:
    _policy_model(kind)
    return kind


def delete_policy(s: Session, kind: str, name: str) -> None:
    p = get_policy(s, kind, name)
    holder = {"keypair": (KeyPair, "keypair"), "user": (User, "user"), "group": (Group, "group")}[kind]
    n = s.scalar(select(func.count()).select_from(holder[0])
                 .where(holder[0].resource_policy_id == p.id))
    if n:
        raise Conflict(f"{kind} resource policy {name!r} is used by {n} {holder[1]}(s)")
    s.delete(p)
    s.flush()


def policy_to_dict(kind: str, p) -> dict:
    out: dict[str, Any] = {"kind": kind, "name": p.name}
    if kind == "keypair":
        out.update(
            total_resource_slots=dict(p.total_resource_slots or {}),
            max_concurrent_sessions=p.max_concurrent_sessions,
            max_session_lifetime=p.max_session_lifetime,
            idle_timeout=p.idle_timeout,
            allowed_vfolder_hosts=_grants_out(p.allowed_vfolder_hosts),
            egress=p.egress,
            egress_allowlist=list(p.egress_allowlist or []),
        )
    else:
        out.update(max_vfolder_count=p.max_vfolder_count, max_quota_size=p.max_quota_size,
                   max_quota_scope_size=p.max_quota_scope_size)
    out["created_at"] = p.created_at.isoformat() if p.created_at else None
    return out


def default_keypair_policy(s: Session) -> KeyPairResourcePolicy:
    """The ``default`` keypair policy (unlimited until an admin changes it), created on first use."""
    p = s.scalar(select(KeyPairResourcePolicy).where(KeyPairResourcePolicy.name == DEFAULT_KEYPAIR_POLICY))
    if p is None:
        p = create_policy(s, "keypair", {"name": DEFAULT_KEYPAIR_POLICY})
    return p


# -- groups -------------------------------------------------------------------------------------

GROUP_FIELDS = ("name", "domain", "description", "is_active", "total_resource_slots", "allowed_images",
                "allowed_vfolder_hosts", "resource_policy")


def create_group(s: Session, data: Mapping[str, Any]) -> Group:
    _check_unknown(data, GROUP_FIELDS)
    name = _name(data.get("name"), "name")
    domain = get_domain(s, _name(data.get("domain"), "domain"))
    if s.scalar(select(Group).where(Group.domain_id == domain.id, Group.name == name)):
        raise Conflict(f"group {name!r} already exists in domain {domain.name!r}", field="name")
    rp = data.get("resource_policy")
    g = Group(name=name, domain=domain, description="", is_active=True, total_resource_slots={},
              allowed_images=[], allowed_vfolder_hosts={},
              resource_policy=get_policy(s, "group", rp) if rp is not None else None)
    s.add(g)
    _apply_domain_like(g, data)
    _flush(s, f"group {name!r}")
    return g


def get_group(s: Session, domain: str, name: str) -> Group:
    d = get_domain(s, domain)
    name = _key(name, "group")
    g = s.scalar(select(Group).where(Group.domain_id == d.id, Group.name == name))
    if g is None:
        raise NotFound(f"unknown group {name!r} in domain {domain!r}", field="group")
    return g


def list_groups(s: Session, domain: str | None = None) -> list[Group]:
    q = select(Group).join(Domain).order_by(Domain.name, Group.name)
    if domain is not None:
        q = q.where(Group.domain_id == get_domain(s, domain).id)
    return list(s.scalars(q))


def update_group(s: Session, domain: str, name: str, data: Mapping[str, Any]) -> Group:
    _check_unknown(data, tuple(f for f in GROUP_FIELDS if f != "domain"))
    g = get_group(s, domain, name)
    if "name" in data and data["name"] != g.name:
        new = _name(data["name"], "name")
        if s.scalar(select(Group).where(Group.domain_id == g.domain_id, Group.name == new)):
            raise Conflict(f"group {new!r} already exists in domain {domain!r}", field="name")
        g.name = new
    _apply_domain_like(g, data)
    if "resource_policy" in data:
        rp = data["resource_policy"]
        g.resource_policy = None if rp is None else get_policy(s, "group", rp)
    _flush(s, f"group {g.name!r}")
    return g


def delete_group(s: Session, domain: str, name: str) -> None:
    g = get_group(s, domain, name)
    g.members.clear()
    s.delete(g)
    s.flush()


def group_to_dict(g: Group) -> dict:
    return {
        "name": g.name,
        "domain": g.domain.name,
        "description": g.description,
        "is_active": g.is_active,
        "total_resource_slots": dict(g.total_resource_slots or {}),
        "allowed_images": list(g.allowed_images or []),
        "allowed_vfolder_hosts": _grants_out(g.allowed_vfolder_hosts),
        "resource_policy": g.resource_policy.name if g.resource_policy else None,
        "members": [u.username for u in g.members],
        "created_at": g.created_at.isoformat() if g.created_at else None,
    }


# -- users --------------------------------------------------------------------------------------

USER_FIELDS = ("username", "email", "full_name", "password", "role", "status", "domain", "groups",
               "resource_policy")


def _role(value: Any) -> UserRole:
    try:
        return UserRole(value)
    except ValueError:
        raise InvalidInput(f"role: {value!r} is not one of superadmin, domain-admin, user",
                           field="role") from None


def _status(value: Any) -> UserStatus:
    try:
        return UserStatus(value)
    except ValueError:
        raise InvalidInput(f"status: {value!r} is not one of active, inactive", field="status") from None


def _password(value: Any) -> str:
    if not isinstance(value, str) or len(value) < 8 or len(value) > 1024:
        raise InvalidInput("password: must be 8 to 1024 characters", field="password")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str) or not EMAIL_RE.match(value):
        raise InvalidInput(f"email: {value!r} is not an email address", field="email")
    return value.lower()


def _groups_in(s: Session, domain: Domain, names: Any) -> list[Group]:
    names = _str_list(names, "groups", NAME_RE)
    out = []
    for n in names:
        g = s.scalar(select(Group).where(Group.domain_id == domain.id, Group.name == n))
        if g is None:
            raise NotFound(f"unknown group {n!r} in domain {domain.name!r}", field="groups")
        out.append(g)
    return out


def create_user(s: Session, data: Mapping[str, Any]) -> User:
    _check_unknown(data, USER_FIELDS)
    username = _name(data.get("username"), "username", USERNAME_RE)
    email = _email(data.get("email"))
    domain = get_domain(s, _name(data.get("domain", "default"), "domain"))
    role = _role(data.get("role", "user"))
    status = _status(data.get("status", "active"))
    password = _password(data["password"]) if data.get("password") is not None else None
    if s.scalar(select(User).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists", field="username")
    if s.scalar(select(User).where(User.email == email)):
        raise Conflict(f"email {email!r} is already used", field="email")
    groups = _groups_in(s, domain, data.get("groups"))
    rp = data.get("resource_policy")
    policy = get_policy(s, "user", rp) if rp is not None else None
    full_name = _text(data.get("full_name"), "full_name", 128)
    u = User(username=username, email=email, full_name=full_name, role=role, status=status, domain=domain,
             password_hash=hash_password(password) if password else None, resource_policy=policy,
             groups=groups)
    s.add(u)
    _flush(s, f"user {username!r}")
    return u


def get_user(s: Session, name: str) -> User:
    """By username, or by email when the argument contains '@'."""
    name = _key(name, "user")
    col = User.email if "@" in name else User.username
    u = s.scalar(select(User).where(col == name.lower()))
    if u is None:
        raise NotFound(f"unknown user {name!r}", field="user")
    return u


def list_users(s: Session, domain: str | None = None, group: str | None = None) -> list[User]:
    q = select(User).order_by(User.username)
    if domain is not None:
        d = get_domain(s, domain)
        q = q.where(User.domain_id == d.id)
        if group is not None:
            g = get_group(s, domain, group)
            q = q.where(User.groups.contains(g))
    elif group is not None:
        raise InvalidInput("group: filtering by group needs a domain", field="group")
    return list(s.scalars(q))


def update_user(s: Session, name: str, data: Mapping[str, Any]) -> User:
    _check_unknown(data, USER_FIELDS + ("add_groups", "remove_groups"))
    u = get_user(s, name)
    if "username" in data and data["username"] != u.username:
        new = _name(data["username"], "username", USERNAME_RE)
        if s.scalar(select(User).where(User.username == new)):
            raise Conflict(f"user {new!r} already exists", field="username")
        u.username = new
    if "email" in data:
        email = _email(data["email"])
        if email != u.email and s.scalar(select(User).where(User.email == email)):
            raise Conflict(f"email {email!r} is already used", field="email")
        u.email = email
    if "full_name" in data:
        u.full_name = _text(data["full_name"], "full_name", 128)
    if "role" in data:
        u.role = _role(data["role"])
    if "status" in data:
        u.status = _status(data["status"])
    if "password" in data:
        u.password_hash = hash_password(_password(data["password"])) if data["password"] else None
    if "domain" in data and data["domain"] != u.domain.name:
        # groups belong to a domain: moving a user drops memberships that would cross domains
        u.domain = get_domain(s, _name(data["domain"], "domain"))
        u.groups = [g for g in u.groups if g.domain_id == u.domain.id]
    if "groups" in data:
        u.groups = _groups_in(s, u.domain, data["groups"])
    for g in _groups_in(s, u.domain, data.get("add_groups")):
        if g not in u.groups:
            u.groups.append(g)
    for g in _groups_in(s, u.domain, data.get("remove_groups")):
        if g in u.groups:
            u.groups.remove(g)
    if "resource_policy" in data:
        rp = data["resource_policy"]
        u.resource_policy = None if rp is None else get_policy(s, "user", rp)
    _flush(s, f"user {u.username!r}")
    return u


def delete_user(s: Session, name: str) -> None:
    u = get_user(s, name)
    u.groups.clear()
    s.delete(u)  # keypairs go with the user
    s.flush()


def user_to_dict(u: User) -> dict:
    return {
        "username": u.username,
        "email": u.email,
        "full_name": u.full_name,
        "role": u.role.value,
        "status": u.status.value,
        "domain": u.domain.name,
        "groups": [g.name for g in u.groups],
        "resource_policy": u.resource_policy.name if u.resource_policy else None,
        "keypairs": [k.access_key for k in u.keypairs],
        "created_at": u.created_at.isoformat() if u.created_at else None,
    }


# -- keypairs -----------------------------------------------------------------------------------

KEYPAIR_FIELDS = ("user", "resource_policy", "is_active")


def issue_keypair(s: Session, box: SecretBox, data: Mapping[str, Any],
                  keys: tuple[str, str] | None = None) -> tuple[KeyPair, str]:
    """Create a keypair for a user; returns it with the clear secret, which is never shown again.

    ``keys`` fixes the access and secret key (fixtures and migrations from Backend.AI); otherwise
    fresh ones are generated.
    """
    _check_unknown(data, KEYPAIR_FIELDS)
    if keys is not None:
        if not isinstance(keys[0], str) or not ACCESS_KEY_RE.match(keys[0]):
            raise InvalidInput(f"access_key: {keys[0]!r} is not an access key (AKIA + 16 characters)",
                               field="access_key")
        if not isinstance(keys[1], str) or not 20 <= len(keys[1]) <= 128:
            raise InvalidInput("secret_key: must be 20 to 128 characters", field="secret_key")
        if s.get(KeyPair, keys[0]) is not None:
            raise Conflict(f"keypair {keys[0]!r} already exists", field="access_key")
    user = get_user(s, data.get("user"))
    rp = data.get("resource_policy")
    policy = get_policy(s, "keypair", rp) if rp is not None else default_keypair_policy(s)
    is_active = _bool(data.get("is_active", True), "is_active")
    access_key, secret = keys or generate_keypair()
    kp = KeyPair(access_key=access_key, secret_key_encrypted=box.encrypt(secret), user=user,
                 resource_policy=policy, is_active=is_active)
    s.add(kp)
    _flush(s, "keypair")
    return kp, secret


def get_keypair(s: Session, access_key: str) -> KeyPair:
    if not isinstance(access_key, str) or not ACCESS_KEY_RE.match(access_key):
        raise InvalidInput(f"access_key: {access_key!r} is not an access key (AKIA + 16 characters)",
                           field="access_key")
    kp = s.get(KeyPair, access_key)
    if kp is None:
        raise NotFound(f"unknown keypair {access_key!r}", field="access_key")
    return kp


def list_keypairs(s: Session, user: str | None = None) -> list[KeyPair]:
    q = select(KeyPair).join(User).order_by(User.username, KeyPair.created_at)
    if user is not None:
        q = q.where(KeyPair.user_id == get_user(s, user).id)
    return list(s.scalars(q))


def update_keypair(s: Session, access_key: str, data: Mapping[str, Any]) -> KeyPair:
    _check_unknown(data, ("resource_policy", "is_active"))
    kp = get_keypair(s, access_key)
    if "is_active" in data:
        kp.is_active = _bool(data["is_active"], "is_active")
    if "resource_policy" in data:
        kp.resource_policy = get_policy(s, "keypair", data["resource_policy"])
    _flush(s, f"keypair {access_key!r}")
    return kp


def delete_keypair(s: Session, access_key: str) -> None:
    s.delete(get_keypair(s, access_key))
    s.flush()


def keypair_to_dict(kp: KeyPair) -> dict:
    return {
        "access_key": kp.access_key,
        "user": kp.user.username,
        "is_active": kp.is_active,
        "resource_policy": kp.resource_policy.name,
        "created_at": kp.created_at.isoformat() if kp.created_at else None,
        "last_used": kp.last_used.isoformat() if kp.last_used else None,
    }


# -- policy levels for admission ----------------------------------------------------------------

def levels_for(kp: KeyPair, group: Group) -> list[P.Level]:
    """The keypair, group and domain levels that bound a session charged to ``group``."""
    if group.domain_id != kp.user.domain_id:
        raise InvalidInput(f"group {group.name!r} is not in the user's domain", field="group")
    rp = kp.resource_policy
    return [
        P.Level("keypair", kp.access_key, P.slots_from_json(rp.total_resource_slots),
                rp.max_concurrent_sessions),
        P.Level("group", group.name, P.slots_from_json(group.total_resource_slots)),
        P.Level("domain", group.domain.name, P.slots_from_json(group.domain.total_resource_slots)),
    ]
