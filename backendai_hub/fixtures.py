"""Fixture files (JSON or YAML) that describe tenancy: populate (upsert), list and reset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from . import tenancy as T
from . import validation as V
from .errors import InvalidInput, NotFound, TenancyError
from .keys import SecretBox
from .models import KeyPair

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


def _items(data: dict) -> list[tuple[str, str, dict]]:
    """Fixture objects in dependency order as (kind, label, record)."""
    out: list[tuple[str, str, dict]] = []
    for kind, records in (data.get("resource_policies") or {}).items():
        out += [(f"{kind}-policy", str(r.get("name")), r) for r in records or []]
    out += [("domain", str(r.get("name")), r) for r in data.get("domains") or []]
    out += [("group", f"{r.get('domain', 'default')}/{r.get('name')}", r) for r in data.get("groups") or []]
    out += [("user", str(r.get("username")), r) for r in data.get("users") or []]
    out += [("keypair", str(r.get("access_key") or f"(new for {r.get('user')})"), r)
            for r in data.get("keypairs") or []]
    for kind, label, r in out:
        if not isinstance(r, dict):
            raise InvalidInput(f"fixture: {kind} entry {label!r} must be a mapping", field=kind)
    return out


def _find(s: Session, kind: str, r: dict):
    try:
        if kind.endswith("-policy"):
            return T.policies.get(s, kind[:-7], r.get("name"))
        if kind == "domain":
            return T.domains.get(s, r.get("name"))
        if kind == "group":
            return T.groups.get(s, r.get("domain", "default"), r.get("name"))
        if kind == "user":
            return T.users.get(s, r.get("username"))
        if kind == "keypair" and r.get("access_key"):
            return T.keypairs.get(s, r["access_key"])
    except NotFound:
        return None
    return None


def populate(s: Session, box: SecretBox, data: dict) -> list[dict]:
    """Create what is missing and update what exists, in one transaction (the caller's)."""
    report = []
    for kind, label, r in _items(data):
        try:
            existing = _find(s, kind, r)
            action = "updated" if existing is not None else "created"
            if kind.endswith("-policy"):
                pk = kind[:-7]
                if existing is None:
                    T.policies.create(s, pk, r)
                else:
                    T.policies.update(s, pk, r["name"], {k: v for k, v in r.items() if k != "name"})
            elif kind == "domain":
                if existing is None:
                    T.domains.create(s, r)
                else:
                    T.domains.update(s, r["name"], {k: v for k, v in r.items() if k != "name"})
            elif kind == "group":
                rec = {"domain": "default", **r}
                if existing is None:
                    T.groups.create(s, rec)
                else:
                    T.groups.update(s, rec["domain"], rec["name"],
                                   {k: v for k, v in rec.items() if k not in ("name", "domain")})
            elif kind == "user":
                if existing is None:
                    T.users.create(s, r)
                else:
                    T.users.update(s, r["username"], {k: v for k, v in r.items() if k != "username"})
            elif kind == "keypair":
                _populate_keypair(s, box, r, existing)
        except TenancyError as e:
            raise type(e)(f"fixture {kind} {label!r}: {e.message}", field=e.field) from None
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
    return [{"kind": kind, "name": label, "present": _find(s, kind, r) is not None}
            for kind, label, r in _items(data)]


def reset(s: Session, box: SecretBox, data: dict) -> list[dict]:
    """Delete the fixture's objects (dependents first), then populate them afresh."""
    for kind, _label, r in reversed(_items(data)):
        obj = _find(s, kind, r)
        if obj is None:
            continue
        if kind == "keypair":
            s.delete(obj)
        elif kind == "user":
            T.users.delete(s, obj.username)
        elif kind == "group":
            T.groups.delete(s, obj.domain.name, obj.name)
        elif kind == "domain":
            T.domains.delete(s, obj.name)
        else:
            T.policies.delete(s, kind[:-7], obj.name)
        s.flush()
    return populate(s, box, data)
