"""REST resource: the audit log (read-only here; every writing request of the service appends to it)."""

from __future__ import annotations

from .. import audit
from .. import validation as V
from ..errors import NotFound
from ..models import AuditLog, AuditStatus
from .base import APIHandler
from .routes import Op, Route
from .rules import Principal

_FILTERS = ("actor", "entity_type", "entity_id", "operation", "status", "since", "until", "q")


def visible(p: Principal) -> dict:
    """Superadmins read every row, domain admins their domains' and their own, users their own."""
    if p.is_superadmin:
        return {}
    if p.admin_domains:
        return {"domains": frozenset(p.admin_domains), "actors": frozenset({p.username})}
    return {"actors": frozenset({p.username})}


class AuditLogsHandler(APIHandler):
    def query_filters(self) -> audit.Query:
        got = {name: self.query(name) for name in _FILTERS}
        return audit.Query(
            actor=got["actor"], entity_type=got["entity_type"], entity_id=got["entity_id"],
            operation=got["operation"],
            status=V.member(AuditStatus)(got["status"], "status") if got["status"] else None,
            since=V.timestamp(got["since"], "since") if got["since"] else None,
            until=V.timestamp(got["until"], "until") if got["until"] else None,
            text=V.text(got["q"], "q", 200) if got["q"] else None,
            **visible(self.principal))

    async def get(self):
        q = self.query_filters()
        limit, offset = self.page()
        rows, total = await self.run(lambda s: audit.search(s, q, limit, offset))
        self.write_json({"items": [audit.to_dict(r) for r in rows], "total": total, "limit": limit,
                         "offset": offset})


class AuditLogHandler(APIHandler):
    async def get(self, row_id):
        try:
            wanted = int(row_id)
        except ValueError:
            raise NotFound(f"no audit log row {row_id!r}") from None
        scope = audit.Query(**visible(self.principal))

        def work(s):
            row = s.get(AuditLog, wanted)
            if row is None or not audit.search_one(s, scope, row.id):
                raise NotFound(f"no audit log row {row_id!r}")
            return audit.to_dict(row)

        self.write_json(await self.run(work))


_S = {"type": "string"}
_NS = {"type": "string", "nullable": True}
SCHEMAS = {"AuditLog": {
    "id": {"type": "integer"}, "seq": {"type": "integer"}, "created_at": _S, "actor": _NS, "credential": _S,
    "acted_as": _NS, "domain": _NS, "client_address": _NS, "source": _S, "entity_type": _S, "entity_id": _NS,
    "operation": _S, "action": _S, "request_id": _NS,
    "status": {"type": "string", "enum": [m.value for m in AuditStatus]}, "description": _S,
    "duration_ms": {"type": "number"}, "prev_hash": _S, "hash": _S}}
ROUTES = [
    Route(r"audit-logs", AuditLogsHandler, tag="audit", ops={"get": Op(
        summary="Audit log rows, newest first: superadmins all, domain admins their domains', users their own",
        page="AuditLog", query=(*(f for f in _FILTERS if f not in ("since", "until")),
                                ("since", {"type": "string", "format": "date-time"}),
                                ("until", {"type": "string", "format": "date-time"})))}),
    Route(r"audit-logs/([^/]+)", AuditLogHandler, ("id",), tag="audit", ops={"get": Op(answer="AuditLog")}),
]
