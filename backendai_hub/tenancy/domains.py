"""Tenancy operations on domains (tenants): create, get, list, update, delete, to_dict."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import validation as V
from ..db import flush_or_conflict
from ..errors import Conflict, NotFound
from ..models import Domain, Group, User
from .policies import KINDS

# what a domain and a group share: limits, allowed images and storage hosts
SHARED_FIELDS: dict[str, V.Parser] = {
    "description": V.text,
    "is_active": V.boolean,
    "total_resource_slots": V.slots,
    "allowed_images": V.images,
    "allowed_vfolder_hosts": V.host_permissions,
    "code_log": V.boolean,  # record the code its sessions run (a session logs when its domain or group says so)
}
FIELDS: dict[str, V.Parser] = {"name": V.lower_name, **SHARED_FIELDS, "allowed_resource_policies": V.policy_names}


def _existing_policies(s: Session, names: dict[str, list[str]]) -> dict[str, list[str]]:
    for kind, listed in names.items():
        model = KINDS[kind]
        known = set(s.scalars(select(model.name).where(model.name.in_(listed))))
        missing = [n for n in listed if n not in known]
        if missing:
            raise NotFound(f"allowed_resource_policies: unknown {kind} resource policy {missing[0]!r}",
                           field="allowed_resource_policies")
    return names


def _apply(s: Session, d: Domain, values: Mapping[str, Any]) -> None:
    apply_shared(d, values)
    if "allowed_resource_policies" in values:
        d.allowed_resource_policies = _existing_policies(s, values["allowed_resource_policies"])


def apply_shared(obj: Domain | Group, values: Mapping[str, Any]) -> None:
    """Set the parsed shared fields (see SHARED_FIELDS) that ``values`` holds."""
    for field in SHARED_FIELDS:
        if field in values:
            setattr(obj, field, values[field])


def create(s: Session, data: Mapping[str, Any]) -> Domain:
    v = V.parse(data, FIELDS)
    name = v.get("name") or V.lower_name(None, "name")
    if s.scalar(select(Domain).where(Domain.name == name)):
        raise Conflict(f"domain {name!r} already exists", field="name")
    d = Domain(name=name, description="", is_active=True, total_resource_slots={}, allowed_images=[],
               allowed_vfolder_hosts={}, allowed_resource_policies={})
    _apply(s, d, v)
    s.add(d)
    flush_or_conflict(s, f"domain {name!r}")
    return d


def get(s: Session, name: str) -> Domain:
    name = V.key(name, "domain")
    d = s.scalar(select(Domain).where(Domain.name == name))
    if d is None:
        raise NotFound(f"unknown domain {name!r}", field="domain")
    return d


def list_(s: Session) -> list[Domain]:
    return list(s.scalars(select(Domain).order_by(Domain.name)))


def update(s: Session, name: str, data: Mapping[str, Any]) -> Domain:
    v = V.parse(data, FIELDS)
    d = get(s, name)
    if "name" in v and v["name"] != d.name:
        if s.scalar(select(Domain).where(Domain.name == v["name"])):
            raise Conflict(f"domain {v['name']!r} already exists", field="name")
        d.name = v["name"]
    _apply(s, d, v)
    flush_or_conflict(s, f"domain {d.name!r}")
    return d


def delete(s: Session, name: str) -> None:
    d = get(s, name)
    n_users = s.scalar(select(func.count()).select_from(User).where(User.domain_id == d.id))
    n_groups = s.scalar(select(func.count()).select_from(Group).where(Group.domain_id == d.id))
    if n_users or n_groups:
        raise Conflict(f"domain {name!r} still has {n_users} user(s) and {n_groups} group(s); "
                       "delete them first")
    s.delete(d)
    s.flush()


def shared_to_dict(obj: Domain | Group) -> dict:
    return {
        "description": obj.description,
        "is_active": obj.is_active,
        "total_resource_slots": dict(obj.total_resource_slots or {}),
        "allowed_images": list(obj.allowed_images or []),
        "allowed_vfolder_hosts": V.host_permissions_out(obj.allowed_vfolder_hosts),
        "code_log": bool(obj.code_log),
    }


def to_dict(d: Domain) -> dict:
    return {"name": d.name, **shared_to_dict(d),
            "allowed_resource_policies": {k: list(v) for k, v in (d.allowed_resource_policies or {}).items()},
            "created_at": d.created_at.isoformat() if d.created_at else None}
