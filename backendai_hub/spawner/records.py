"""What the spawner writes to the audit log: a session's admission, start, stop and exit, and refusals.

Each row is appended in the transaction that changes the session's row (admitted, running, released),
so the log and the sessions table never disagree; a refusal before anything was written is recorded
in a transaction of its own.
"""

from __future__ import annotations

from .. import audit
from ..models import AuditStatus


def actor(spawner) -> audit.Actor:
    """The session's owner, through the hub (the hub does not tell which admin may have asked)."""
    charge = getattr(spawner, "_charge", None)
    return audit.Actor(user=spawner.user.name, source="hub", credential="hub",
                       domain=charge.domain if charge is not None else None)


def event(spawner, operation: str, status: AuditStatus = AuditStatus.success, description: str = "",
          sid: int | None = None) -> audit.Event:
    sid = spawner.session_id if sid is None else sid
    server = spawner.name or ""
    entity = f"{spawner.user.name}/{server}" + (f"#{sid}" if sid is not None else "")
    return audit.Event("session", operation, f"{operation} server {spawner.user.name}/{server}",
                       entity_id=entity, status=status, description=description)


def append(s, spawner, operation: str, status: AuditStatus = AuditStatus.success, description: str = "",
           sid: int | None = None) -> None:
    audit.append(s, actor(spawner), event(spawner, operation, status, description, sid))


def release_operation(reason: str) -> tuple[str, AuditStatus]:
    """The audit operation and status of a release, from its reason."""
    if reason == "stopped":
        return "stop", AuditStatus.success
    if reason.startswith("container exited"):
        return "exit", AuditStatus.success
    if reason.startswith("left the queue"):
        return "admit", AuditStatus.rejected
    if reason.startswith("vfolder mounts refused"):
        return "start", AuditStatus.rejected
    return "start", AuditStatus.error
