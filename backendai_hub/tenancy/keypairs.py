"""Tenancy operations on API keypairs (the secret key is returned once, at issue)."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import validation as V
from ..db import flush_or_conflict
from ..errors import Conflict, InvalidInput, NotFound
from ..keys import SecretBox, generate_keypair
from ..models import KeyPair, User
from . import policies, users

FIELDS: dict[str, V.Parser] = {"user": V.key, "resource_policy": V.opt_key, "is_active": V.boolean}
UPDATE_FIELDS = {k: p for k, p in FIELDS.items() if k != "user"}


def issue(s: Session, box: SecretBox, data: Mapping[str, Any],
          keys: tuple[str, str] | None = None) -> tuple[KeyPair, str]:
    """Create a keypair for a user; returns it with the clear secret, which is never shown again.

    ``keys`` fixes the access and secret key (fixtures and migrations from Backend.AI); otherwise
    fresh ones are generated.
    """
    v = V.parse(data, FIELDS)
    if keys is not None:
        V.access_key(keys[0])
        if not isinstance(keys[1], str) or not 20 <= len(keys[1]) <= 128:
            raise InvalidInput("secret_key: must be 20 to 128 characters", field="secret_key")
        if s.get(KeyPair, keys[0]) is not None:
            raise Conflict(f"keypair {keys[0]!r} already exists", field="access_key")
    user = users.get(s, v.get("user"))
    rp = v.get("resource_policy")
    policy = policies.get(s, "keypair", rp) if rp is not None else policies.default_keypair_policy(s)
    access_key, secret = keys or generate_keypair()
    kp = KeyPair(access_key=access_key, secret_key_encrypted=box.encrypt(secret), user=user,
                 resource_policy=policy, is_active=v.get("is_active", True))
    s.add(kp)
    if user.main_access_key is None:  # a user's first keypair is their main one
        user.main_access_key = access_key
    flush_or_conflict(s, "keypair")
    return kp, secret


def get(s: Session, access_key: str) -> KeyPair:
    kp = s.get(KeyPair, V.access_key(access_key))
    if kp is None:
        raise NotFound(f"unknown keypair {access_key!r}", field="access_key")
    return kp


def list_(s: Session, user: str | None = None) -> list[KeyPair]:
    q = select(KeyPair).join(User).order_by(User.username, KeyPair.created_at)
    if user is not None:
        q = q.where(KeyPair.user_id == users.get(s, user).id)
    return list(s.scalars(q))


def update(s: Session, access_key: str, data: Mapping[str, Any]) -> KeyPair:
    v = V.parse(data, UPDATE_FIELDS)
    kp = get(s, access_key)
    if "is_active" in v:
        kp.is_active = v["is_active"]
    if "resource_policy" in v:
        kp.resource_policy = policies.get(s, "keypair", v["resource_policy"])
    flush_or_conflict(s, f"keypair {access_key!r}")
    return kp


def delete(s: Session, access_key: str) -> None:
    kp = get(s, access_key)
    user = kp.user
    s.delete(kp)
    s.flush()
    if user.main_access_key == access_key:  # the next main: the oldest active one left, else the oldest
        # (never a web shell session's own key, which ends with its session)
        left = sorted((k for k in user.keypairs if k.access_key != access_key and k.session_id is None),
                      key=lambda k: (not k.is_active, k.created_at))
        user.main_access_key = left[0].access_key if left else None
        s.flush()


def to_dict(kp: KeyPair) -> dict:
    return {
        "access_key": kp.access_key,
        "user": kp.user.username,
        "is_active": kp.is_active,
        "resource_policy": kp.resource_policy.name,
        "created_at": kp.created_at.isoformat() if kp.created_at else None,
        "last_used": kp.last_used.isoformat() if kp.last_used else None,
        "session_id": kp.session_id,
    }
