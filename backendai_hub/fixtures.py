"""Fixture files (JSON or YAML) that describe tenancy: populate (upsert), list and reset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from . import audit
from . import tenancy as T
from . import validation as V
from .errors import InvalidInput, NotFound, TenancyError
from .keys import SecretBox
from .models import KeyPair
from .resources import REGISTRY, Resource

SECTIONS = ("resource_policies", "domains", "groups", "users", "keypairs")


def load(path: str | Path) -> dict[str, Any]:
    """Read and shape-check a fixture file; raises InvalidInput naming the problem."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InvalidInput(f"cannot read fixture {str(p)!r}: {e.strerror}", field="file") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise InvalidInput(f"fixture {str(p)!r} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: "
                           f"{str(e).splitlines()[0]}", field="file") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"fixture {str(p)!r} must be a mapping of sections", field="file")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InvalidInput(f"fixture: unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})",
                           field=unknown[0])
    rp = data.get("resource_policies") or {}
    if not isinstance(rp, dict) or set(rp) - set(T.policies.KINDS):
        raise InvalidInput("fixture: resource_policies must map keypair/user/group to lists",
                           field="resource_policies")
    for section in SECTIONS[1:]:
        if not isinstance(data.get(section) or [], list):
            raise InvalidInput(f"fixture: {section} must be a list", field=section)
    return data


# sections in dependency order, and the resource each describes
RESOURCE_OF = {"resource_policies": "policy", "domains": "domain", "groups": "group", "users": "user",
               "keypairs": "keypair"}
DEFAULTS = {"domain": "default"}  # a group's domain when its record names none


def _items(data: dict) -> list[tuple[str, str, Resource, dict]]:
    """Fixture objects in dependency order as (kind, label, resource, record)."""
    out: list[tuple[str, str, Resource, dict]] = []
    for kind, records in (data.get("resource_policies") or {}).items():
        for r in records or []:
            out.append((f"{kind}-policy", str(r.get("name") if isinstance(r, dict) else r), REGISTRY["policy"],
                        {"kind": kind, **r} if isinstance(r, dict) else r))
    for section in SECTIONS[1:]:
        res = REGISTRY[RESOURCE_OF[section]]
        for r in data.get(section) or []:
            if res.name == "keypair":
                label = str(r.get("access_key") or f"(new for {r.get('user')})") if isinstance(r, dict) else str(r)
            else:
                label = res.label(res.key_of(r, DEFAULTS)) if isinstance(r, dict) else str(r)
            out.append((res.name, label, res, {**DEFAULTS, **r} if res.name == "group" and isinstance(r, dict) else r))
    for kind, label, _res, r in out:
        if not isinstance(r, dict):
            raise InvalidInput(f"fixture: {kind} entry {label!r} must be a mapping", field=kind)
    return out


def _find(s: Session, res: Resource, r: dict):
    if res.name == "keypair" and not r.get("access_key"):
        return None  # a new keypair, generated at populate
    try:
        return res.get(s, *res.key_of(r))
    except NotFound:
        return None


FIXTURES = audit.Actor(user=None, source="fixtures", credential="fixture file")
_OPERATIONS = {"created": "create", "updated": "update", "deleted": "delete"}


def _record(s: Session, actor: audit.Actor | None, kind: str, label: str, action: str, what: str) -> None:
    if actor is None:
        return  # not recorded (a schema older than the audit log's, in migration tests)
    entity = "policy" if kind.endswith("-policy") else kind
    audit.append(s, actor, audit.Event(entity, _OPERATIONS[action], f"fixture {what}", entity_id=label))


def populate(s: Session, box: SecretBox, data: dict, actor: audit.Actor | None = FIXTURES,
             what: str = "populate") -> list[dict]:
    """Create what is missing and update what exists, in one transaction (the caller's); each object
    created or updated is recorded in the audit log in it."""
    report = []
    for kind, label, res, r in _items(data):
        try:
            existing = _find(s, res, r)
            action = "updated" if existing is not None else "created"
            if res.name == "keypair":
                _populate_keypair(s, box, r, existing)
            elif existing is None:
                res.create(s, box, r)
            else:
                res.update(s, *res.key_of(r), {k: v for k, v in r.items() if k not in res.key})
        except TenancyError as e:
            raise type(e)(f"fixture {kind} {label!r}: {e.message}", field=e.field) from None
        _record(s, actor, kind, label, action, what)
        report.append({"kind": kind, "name": label, "action": action})
    return report


def _populate_keypair(s: Session, box: SecretBox, r: dict, existing: KeyPair | None) -> None:
    V.check_unknown(r, ("user", "access_key", "secret_key", "resource_policy", "is_active"))
    ak, sk = r.get("access_key"), r.get("secret_key")
    if bool(ak) != bool(sk):
        raise InvalidInput("access_key and secret_key go together", field="secret_key")
    fields = {k: r[k] for k in ("resource_policy", "is_active") if k in r}
    if existing is not None:
        if existing.user.username != r.get("user"):
            raise InvalidInput(f"keypair {ak!r} belongs to {existing.user.username!r}", field="user")
        existing.secret_key_encrypted = box.encrypt(sk)
        T.keypairs.update(s, ak, fields)
        return
    T.keypairs.issue(s, box, {"user": r.get("user"), **fields}, keys=(ak, sk) if ak else None)


def status(s: Session, data: dict) -> list[dict]:
    """Each fixture object and whether it exists in the database now."""
    return [{"kind": kind, "name": label, "present": _find(s, res, r) is not None}
            for kind, label, res, r in _items(data)]


def reset(s: Session, box: SecretBox, data: dict, actor: audit.Actor | None = FIXTURES) -> list[dict]:
    """Delete the fixture's objects (dependents first), then populate them afresh."""
    for kind, label, res, r in reversed(_items(data)):
        if _find(s, res, r) is not None:
            res.delete(s, *res.key_of(r))
            s.flush()
            _record(s, actor, kind, label, "deleted", "reset")
    return populate(s, box, data, actor, "reset")
