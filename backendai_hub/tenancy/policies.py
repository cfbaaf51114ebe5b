"""Tenancy operations on resource policies (keypair, user and group kinds)."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import validation as V
from ..db import flush_or_conflict
from ..errors import Conflict, InvalidInput, NotFound
from ..models import Domain, Group, GroupResourcePolicy, KeyPair, KeyPairResourcePolicy, User, UserResourcePolicy

KINDS = {
    "keypair": KeyPairResourcePolicy,
    "user": UserResourcePolicy,
    "group": GroupResourcePolicy,
}
KIND_OF = {model: kind for kind, model in KINDS.items()}
DEFAULT_KEYPAIR_POLICY = "default"

_STORAGE_FIELDS: dict[str, V.Parser] = {
    "max_vfolder_count": V.opt_int_from(0),
    "max_quota_size": V.opt_int_from(0),
    "max_quota_scope_size": V.opt_int_from(0),
}
FIELDS: dict[str, dict[str, V.Parser]] = {
    "keypair": {
        "name": V.name,
        "total_resource_slots": V.slots,
        "max_concurrent_sessions": V.opt_int_from(0),
        "max_session_lifetime": V.opt_int_from(1),
        "idle_timeout": V.opt_int_from(1),
        "idle_timeout_accelerator": V.opt_int_from(1),
        "allowed_vfolder_hosts": V.host_permissions,
        "egress": V.egress_mode,
        "egress_allowlist": V.egress_allowlist,
    },
    "user": {"name": V.name, **_STORAGE_FIELDS},
    "group": {"name": V.name, **_STORAGE_FIELDS},
}
# who holds a policy of each kind (a policy in use cannot be deleted)
_HOLDERS = {"keypair": (KeyPair, "keypair"), "user": (User, "user"), "group": (Group, "group")}


def kind_checked(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidInput(f"kind: {kind!r} is not one of keypair, user, group", field="kind")
    return kind


def _apply(kind: str, p, v: Mapping[str, Any]) -> None:
    for field, value in v.items():
        if field not in ("name", "egress", "egress_allowlist"):
            setattr(p, field, value)
    if "egress" in v or "egress_allowlist" in v:
        p.egress, p.egress_allowlist = V.egress(v.get("egress", p.egress or "none"),
                                                v.get("egress_allowlist", p.egress_allowlist or []))


def create(s: Session, kind: str, data: Mapping[str, Any]):
    model = KINDS[kind_checked(kind)]
    v = V.parse(data, FIELDS[kind])
    name = v.get("name") or V.name(None, "name")
    if s.scalar(select(model).where(model.name == name)):
        raise Conflict(f"{kind} resource policy {name!r} already exists", field="name")
    p = model(name=name)
    if kind == "keypair":
        p.total_resource_slots, p.allowed_vfolder_hosts, p.egress, p.egress_allowlist = {}, {}, "none", []
    _apply(kind, p, v)
    s.add(p)
    flush_or_conflict(s, f"{kind} resource policy {name!r}")
    return p


def get(s: Session, kind: str, name: str):
    model = KINDS[kind_checked(kind)]
    name = V.key(name, "resource_policy")
    p = s.scalar(select(model).where(model.name == name))
    if p is None:
        raise NotFound(f"unknown {kind} resource policy {name!r}", field="policy")
    return p


def list_(s: Session, kind: str | None = None) -> list:
    kinds = [kind_checked(kind)] if kind else list(KINDS)
    out = []
    for k in kinds:
        out.extend(s.scalars(select(KINDS[k]).order_by(KINDS[k].name)))
    return out


def update(s: Session, kind: str, name: str, data: Mapping[str, Any]):
    v = V.parse(data, FIELDS[kind_checked(kind)])
    p = get(s, kind, name)
    model = KINDS[kind]
    if "name" in v and v["name"] != p.name:
        if s.scalar(select(model).where(model.name == v["name"])):
            raise Conflict(f"{kind} resource policy {v['name']!r} already exists", field="name")
        _rename_in_domains(s, kind, p.name, v["name"])
        p.name = v["name"]
    _apply(kind, p, v)
    flush_or_conflict(s, f"{kind} resource policy {p.name!r}")
    return p


def delete(s: Session, kind: str, name: str) -> None:
    p = get(s, kind, name)
    holder, label = _HOLDERS[kind]
    n = s.scalar(select(func.count()).select_from(holder).where(holder.resource_policy_id == p.id))
    if n:
        raise Conflict(f"{kind} resource policy {name!r} is used by {n} {label}(s)")
    allowing = [d.name for d in _domains_allowing(s, kind, p.name)]
    if allowing:
        raise Conflict(f"{kind} resource policy {name!r} is allowed for domain(s) {', '.join(allowing)}; "
                       "take it out of their allowed_resource_policies first")
    s.delete(p)
    s.flush()


def _domains_allowing(s: Session, kind: str, name: str) -> list[Domain]:
    return [d for d in s.scalars(select(Domain).order_by(Domain.name))
            if name in (d.allowed_resource_policies or {}).get(kind, [])]


def _rename_in_domains(s: Session, kind: str, old: str, new: str) -> None:
    for d in _domains_allowing(s, kind, old):
        allowed = {k: list(v) for k, v in d.allowed_resource_policies.items()}
        allowed[kind] = [new if n == old else n for n in allowed[kind]]
        d.allowed_resource_policies = allowed


def to_dict(p) -> dict:
    kind = KIND_OF[type(p)]
    out: dict[str, Any] = {"kind": kind, "name": p.name}
    if kind == "keypair":
        out.update(
            total_resource_slots=dict(p.total_resource_slots or {}),
            max_concurrent_sessions=p.max_concurrent_sessions,
            max_session_lifetime=p.max_session_lifetime,
            idle_timeout=p.idle_timeout,
            idle_timeout_accelerator=p.idle_timeout_accelerator,
            allowed_vfolder_hosts=V.host_permissions_out(p.allowed_vfolder_hosts),
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
        p = create(s, "keypair", {"name": DEFAULT_KEYPAIR_POLICY})
    return p
