"""Sign-in throttling: too many failures per user or client address lock them out for a while."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .models import LoginThrottle


@dataclass(frozen=True)
class ThrottleRules:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=1)
    lock: timedelta = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def keys_for(account: str, address: str | None) -> list[str]:
    """The counters a failed sign-in adds to: the account's and the client address's.

    ``account`` is the account's username whichever of its names or keys was typed (the caller
    resolves it; as typed when it names no account), ``address`` the client address from
    ``forwarded.client_address``, never a header the client chose.
    """
    keys = [f"user:{account.strip().lower()}"]
    if address:
        keys.append(f"addr:{address}")
    return keys


def locked(s: Session, keys: list[str], now: datetime | None = None) -> tuple[str, int] | None:
    """The first locked key and the seconds left on its lock, or None."""
    now = now or _now()
    rows = {r.key: r for r in s.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))}
    for key in keys:  # in the caller's order: the user's lock is named before the address's
        row = rows.get(key)
        if row is not None and row.locked_until and row.locked_until > now:
            return key, max(1, int((row.locked_until - now).total_seconds()))
    return None


def record_failure(s: Session, keys: list[str], rules: ThrottleRules, now: datetime | None = None) -> list[str]:
    """Count a failed sign-in against ``keys``; the keys it locked now."""
    now = now or _now()
    locked = []
    for key in keys:
        row = s.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, window_start=now)
            s.add(row)
        if now - row.window_start > rules.window:
            row.failures, row.window_start = 0, now
        row.failures += 1
        if row.failures >= rules.max_failures:
            row.locked_until = now + rules.lock
            row.failures, row.window_start = 0, now
            locked.append(key)
    return locked


def clear(s: Session, key: str) -> bool:
    return bool(s.execute(delete(LoginThrottle).where(LoginThrottle.key == key)).rowcount)


def active_locks(s: Session, now: datetime | None = None) -> list[dict]:
    now = now or _now()
    rows = s.scalars(select(LoginThrottle).where(LoginThrottle.locked_until > now).order_by(LoginThrottle.key))
    return [{"key": r.key, "locked_until": r.locked_until.isoformat(),
             "seconds_left": max(1, int((r.locked_until - now).total_seconds()))} for r in rows]
