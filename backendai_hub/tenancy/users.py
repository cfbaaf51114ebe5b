"""Tenancy operations on users: accounts in one domain, members of its groups."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import validation as V
from ..db import flush_or_conflict
from ..errors import Conflict, InvalidInput, NotFound
from ..keys import hash_password
from ..models import User, UserRole, UserStatus
from . import domains, groups, policies


def _new_password(value: Any, field: str) -> str | None:
    return None if value is None else V.password(value, field)


def _changed_password(value: Any, field: str) -> str | None:
    """On update, an empty password removes it (a keypair-only user)."""
    return None if value is None or value == "" else V.password(value, field)


FIELDS: dict[str, V.Parser] = {
    "username": V.lower_name,
    "email": V.email,
    "full_name": lambda value, field: V.text(value, field, 128),
    "password": _new_password,
    "role": V.member(UserRole),
    "status": V.member(UserStatus),
    "domain": V.name,
    "groups": V.str_list,
    "resource_policy": V.opt_key,
}
UPDATE_FIELDS: dict[str, V.Parser] = {**FIELDS, "password": _changed_password, "add_groups": V.str_list,
                                      "remove_groups": V.str_list, "main_access_key": V.access_key}


def create(s: Session, data: Mapping[str, Any]) -> User:
    v = V.parse(data, FIELDS)
    username = v.get("username") or V.lower_name(None, "username")
    email = v.get("email") or V.email(None)
    domain = domains.get(s, v.get("domain", "default"))
    if s.scalar(select(User).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists", field="username")
    if s.scalar(select(User).where(User.email == email)):
        raise Conflict(f"email {email!r} is already used", field="email")
    member_of = groups.in_domain(s, domain, v.get("groups", []))
    rp = v.get("resource_policy")
    password = v.get("password")
    u = User(username=username, email=email, full_name=v.get("full_name", ""), role=v.get("role", UserRole.user),
             status=v.get("status", UserStatus.active), domain=domain,
             password_hash=hash_password(password) if password else None,
             resource_policy=policies.get(s, "user", rp) if rp is not None else None, groups=member_of)
    s.add(u)
    flush_or_conflict(s, f"user {username!r}")
    return u


def get(s: Session, name: str) -> User:
    """By username, or by email when the argument contains '@'."""
    name = V.key(name, "user")
    col = User.email if "@" in name else User.username
    u = s.scalar(select(User).where(col == name.lower()))
    if u is None:
        raise NotFound(f"unknown user {name!r}", field="user")
    return u


def list_(s: Session, domain: str | None = None, group: str | None = None) -> list[User]:
    q = select(User).order_by(User.username)
    if domain is not None:
        d = domains.get(s, domain)
        q = q.where(User.domain_id == d.id)
        if group is not None:
            q = q.where(User.groups.contains(groups.get(s, domain, group)))
    elif group is not None:
        raise InvalidInput("group: filtering by group needs a domain", field="group")
    return list(s.scalars(q))


def update(s: Session, name: str, data: Mapping[str, Any]) -> User:
    v = V.parse(data, UPDATE_FIELDS)
    u = get(s, name)
    if "username" in v and v["username"] != u.username:
        if s.scalar(select(User).where(User.username == v["username"])):
            raise Conflict(f"user {v['username']!r} already exists", field="username")
        u.username = v["username"]
    if "email" in v:
        if v["email"] != u.email and s.scalar(select(User).where(User.email == v["email"])):
            raise Conflict(f"email {v['email']!r} is already used", field="email")
        u.email = v["email"]
    for field in ("full_name", "role", "status"):
        if field in v:
            setattr(u, field, v[field])
    if "password" in v:
        u.password_hash = hash_password(v["password"]) if v["password"] else None
    if "domain" in v and v["domain"] != u.domain.name:
        # groups belong to a domain: moving a user drops memberships that would cross domains
        u.domain = domains.get(s, v["domain"])
        u.groups = [g for g in u.groups if g.domain_id == u.domain.id]
    if "groups" in v:
        u.groups = groups.in_domain(s, u.domain, v["groups"])
    for g in groups.in_domain(s, u.domain, v.get("add_groups", [])):
        if g not in u.groups:
            u.groups.append(g)
    for g in groups.in_domain(s, u.domain, v.get("remove_groups", [])):
        if g in u.groups:
            u.groups.remove(g)
    if "resource_policy" in v:
        rp = v["resource_policy"]
        u.resource_policy = None if rp is None else policies.get(s, "user", rp)
    if "main_access_key" in v:
        key = next((k for k in u.keypairs if k.access_key == v["main_access_key"]), None)
        if key is None:
            raise InvalidInput(f"main_access_key: {v['main_access_key']!r} is not a keypair of {u.username!r}",
                               field="main_access_key")
        if key.session_id is not None:
            raise InvalidInput(f"main_access_key: {key.access_key!r} is the own keypair of web shell session "
                               f"{key.session_id}, which ends with it", field="main_access_key")
        u.main_access_key = v["main_access_key"]
    flush_or_conflict(s, f"user {u.username!r}")
    return u


def delete(s: Session, name: str) -> None:
    u = get(s, name)
    u.groups.clear()
    s.delete(u)  # keypairs go with the user
    s.flush()


def to_dict(u: User) -> dict:
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
        "main_access_key": u.main_access_key,
        "created_at": u.created_at.isoformat() if u.created_at else None,
    }
