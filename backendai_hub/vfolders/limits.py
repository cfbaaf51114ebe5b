"""The owner's resource-policy limits on folders: how many (``max_vfolder_count``), how large each, how large all."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import policy as P
from ..errors import Forbidden
from ..models import Group, User, VFolder, VFolderStatus


def owner_key(user: User | None, group: Group | None) -> str:
    return f"u:{user.id}" if user is not None else f"g:{group.id}"


def owner_limits(vf_user: User | None, vf_group: Group | None):
    """(kind, resource policy) of a folder's owner."""
    if vf_user is not None:
        return "user", vf_user.resource_policy
    return "group", vf_group.resource_policy


def check_count(s: Session, owner_key: str, kind: str, policy, owner_name: str) -> None:
    if policy is None or policy.max_vfolder_count is None:
        return
    used = s.scalar(select(func.count()).select_from(VFolder)
                    .where(VFolder.owner_key == owner_key, VFolder.status != VFolderStatus.trashed)) or 0
    if used >= policy.max_vfolder_count:
        raise Forbidden(f"{kind} resource policy {policy.name!r} allows max_vfolder_count="
                        f"{policy.max_vfolder_count} for {kind} {owner_name!r}, {used} in use")


def check_quota(kind: str, policy, quota: int | None, owner_name: str) -> int | None:
    """The folder's quota under ``max_quota_size``: a folder under a capped policy is never unlimited."""
    limit = policy.max_quota_size if policy is not None else None
    if limit is None:
        return quota
    if quota is None:
        return limit
    if quota > limit:
        raise Forbidden(f"{kind} resource policy {policy.name!r} allows max_quota_size="
                        f"{P.format_amount('mem', limit)} per vfolder of {kind} {owner_name!r}; "
                        f"asked {P.format_amount('mem', quota)}")
    return quota


def check_scope(s: Session, owner_key: str, kind: str, policy, quota: int | None, owner_name: str,
                exclude: str | None = None, default: int | None = None) -> int | None:
    """The quota scope (``max_quota_scope_size``): the quotas of all the owner's folders, those in the
    trash included, add up to at most the scope size. Each folder's quota is a hard limit inside
    sessions too (loopback images), so the owner's total is. A folder asked without a quota gets
    what is left (at most ``default``, the per-folder cap); folders that have none (made before the
    policy had a scope size) count as 0."""
    scope = policy.max_quota_scope_size if policy is not None else None
    if scope is None:
        return default if quota is None else quota
    rows = [(name, q) for vid, name, q in s.execute(select(VFolder.id, VFolder.name, VFolder.quota)
                                                    .where(VFolder.owner_key == owner_key)).all() if vid != exclude]
    allotted = sum(q or 0 for _, q in rows)
    left = max(scope - allotted, 0)
    fmt = lambda n: P.format_amount("mem", Decimal(n))  # noqa: E731
    if quota is None:
        quota = min(left, default) if default is not None else left
    if quota == 0 or quota > left:
        shown = ", ".join(f"{name} {fmt(q)}" for name, q in rows if q) or "none"
        raise Forbidden(f"{kind} resource policy {policy.name!r} allows max_quota_scope_size={fmt(scope)} for "
                        f"{kind} {owner_name!r}: {fmt(allotted)} allotted to its vfolders ({shown}), "
                        f"{fmt(left)} left" + (f", {fmt(quota)} asked" if quota else ""))
    return quota
