"""Backend.AI's session routes the official client calls: ``session/<name>`` (info, destroy).

A session's Backend.AI name is its server's name, ``default`` for the default server; its id (a UUID,
session_query.session_uuid) names it too. Users reach their own sessions; admins another user's by
``owner_access_key``, as with the manager.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import Session

from .. import session_query as Q
from ..errors import NotFound
from ..models import KeyPair, SessionStatus
from .backendai_api import CompatBase
from .sessions import SessionBase


def _owner(s: Session, scope: Q.Scope, me: str, owner_access_key: str | None) -> str:
    if not owner_access_key:
        return me
    kp = s.get(KeyPair, owner_access_key)
    if kp is None or not (scope.everything or kp.user.username == me or kp.user.domain.name in scope.domains):
        raise NotFound(f"unknown keypair {owner_access_key!r}", field="owner_access_key")
    return kp.user.username


def info(row) -> dict:
    """The manager's ``get_info`` answer (camelCase) for one of our sessions."""
    d = Q.to_dict(row)
    started = row.started_at or row.created_at
    end = row.terminated_at or datetime.now(timezone.utc)
    return {
        "domainName": d["domain"], "groupId": d["group"], "userId": d["user"], "lang": d["image"],
        "image": d["image"], "architecture": "x86_64", "registry": None, "tag": None,
        "containerId": d["container_id"], "occupiedSlots": d["resources"], "occupyingSlots": d["resources"],
        "requestedSlots": d["resources"], "occupiedShares": {}, "environ": {}, "resourceOpts": {},
        "status": Q.BAI_STATUS[d["status"]], "statusInfo": d["status_info"], "statusData": {},
        "age": int((end - started).total_seconds() * 1000) if started else 0,
        "creationTime": d["created_at"], "terminationTime": d["terminated_at"], "numQueriesExecuted": 0,
        "lastStat": {}, "idleChecks": {}, "sessionId": d["session_uuid"], "sessionName": d["name"],
    }


class CompatSessionHandler(CompatBase, SessionBase):
    """``GET|DELETE <prefix>session/<name>``: ``session info`` and ``session destroy`` of the client."""

    audit_ops = {"DELETE": "stop"}

    def find(self, s: Session, name: str, *, live: bool = False):
        owner = _owner(s, self.scope, self.principal.username, self.query("owner_access_key"))
        row = Q.by_name(s, self.scope, name, owner)
        if live and row.status == SessionStatus.terminated:
            raise NotFound(f"no live session {name!r}", field="session_name")
        return row

    async def get(self, name):
        self.write_json(await self.run(lambda s: info(self.find(s, name))))

    async def delete(self, name):
        """Destroy (stop) a live session; the manager answers its last statistics, which we do not keep."""
        sid = await self.run(lambda s: str(self.find(s, name, live=True).id), readonly=True)
        code, _ = await self.stop(sid)
        self.write_json({"stats": {}, "status": "terminating" if code == 202 else "terminated"})


ROUTES = [(r"session/([^/]+)", CompatSessionHandler)]
