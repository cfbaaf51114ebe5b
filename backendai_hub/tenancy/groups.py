"""Tenancy operations on groups (projects) within a domain."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import validation as V
from ..db import flush_or_conflict
from ..errors import Conflict, NotFound
from ..models import Domain, Group
from . import domains, policies


FIELDS: dict[str, V.Parser] = {
    "name": V.name,
    "domain": V.name,
    **domains.SHARED_FIELDS,
    "resource_policy": V.opt_key,
}
UPDATE_FIELDS = {k: p for k, p in FIELDS.items() if k != "domain"}


def create(s: Session, data: Mapping[str, Any]) -> Group:
    v = V.parse(data, FIELDS)
    name = v.get("name") or V.name(None, "name")
    domain = domains.get(s, v.get("domain") or V.name(None, "domain"))
    if s.scalar(select(Group).where(Group.domain_id == domain.id, Group.name == name)):
        raise Conflict(f"group {name!r} already exists in domain {domain.name!r}", field="name")
    rp = v.get("resource_policy")
    g = Group(name=name, domain=domain, description="", is_active=True, total_resource_slots={},
              allowed_images=[], allowed_vfolder_hosts={},
              resource_policy=policies.get(s, "group", rp) if rp is not None else None)
    s.add(g)
    domains.apply_shared(g, v)
    flush_or_conflict(s, f"group {name!r}")
    return g


def get(s: Session, domain: str, name: str) -> Group:
    d = domains.get(s, domain)
    name = V.key(name, "group")
    g = s.scalar(select(Group).where(Group.domain_id == d.id, Group.name == name))
    if g is None:
        raise NotFound(f"unknown group {name!r} in domain {domain!r}", field="group")
    return g


def list_(s: Session, domain: str | None = None) -> list[Group]:
    q = select(Group).join(Domain).order_by(Domain.name, Group.name)
    if domain is not None:
        q = q.where(Group.domain_id == domains.get(s, domain).id)
    return list(s.scalars(q))


def in_domain(s: Session, domain: Domain, names: list[str], field: str = "groups") -> list[Group]:
    """The groups of ``domain`` with these names; an unknown one is a 404 naming ``field``."""
    out = []
    for n in names:
        g = s.scalar(select(Group).where(Group.domain_id == domain.id, Group.name == n))
        if g is None:
            raise NotFound(f"unknown group {n!r} in domain {domain.name!r}", field=field)
        out.append(g)
    return out


def update(s: Session, domain: str, name: str, data: Mapping[str, Any]) -> Group:
    v = V.parse(data, UPDATE_FIELDS)
    g = get(s, domain, name)
    if "name" in v and v["name"] != g.name:
        if s.scalar(select(Group).where(Group.domain_id == g.domain_id, Group.name == v["name"])):
            raise Conflict(f"group {v['name']!r} already exists in domain {domain!r}", field="name")
        g.name = v["name"]
    domains.apply_shared(g, v)
    if "resource_policy" in v:
        rp = v["resource_policy"]
        g.resource_policy = None if rp is None else policies.get(s, "group", rp)
    flush_or_conflict(s, f"group {g.name!r}")
    return g


def delete(s: Session, domain: str, name: str) -> None:
    g = get(s, domain, name)
    g.members.clear()
    s.delete(g)
    s.flush()


def to_dict(g: Group) -> dict:
    return {
        "name": g.name,
        "domain": g.domain.name,
        **domains.shared_to_dict(g),
        "resource_policy": g.resource_policy.name if g.resource_policy else None,
        "members": [u.username for u in g.members],
        "created_at": g.created_at.isoformat() if g.created_at else None,
    }
