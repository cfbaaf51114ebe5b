"""REST resource: code-execution logs (ingest from sessions' servers; reads with reach and filters)."""

from __future__ import annotations

from .. import code_logs as CL
from ..errors import Forbidden, InvalidInput, Unauthorized
from ..scopes import SCOPE_CODE_LOG
from .base import APIHandler
from .routes import Op, Route
from .rules import USER, Principal


def reach_of(p: Principal) -> CL.Reach:
    """Superadmins read every record, domain admins their domains', everyone their own."""
    if p.is_superadmin:
        return CL.Reach(all=True)
    return CL.Reach(domains=frozenset(p.admin_domains), user=p.username)


def check_filters(p: Principal, f: dict) -> None:
    """Asking for what one cannot read is a 403 (not an empty page), so a typo is not mistaken for silence."""
    if p.is_superadmin:
        return
    if "domain" in f and f["domain"] not in p.admin_domains and f.get("user") != p.username:
        raise Forbidden(f"code logs: domain {f['domain']!r} is not yours to read (domain admins read their "
                        "domain's records, everyone their own)")
    if "user" in f and f["user"] != p.username and not p.admin_domains:
        raise Forbidden("code logs: users read only their own records")


class CodeLogsHandler(APIHandler):
    may_revoke_access = False
    # ingest is a log of its own: an audit row per batch and heartbeat would bury the audit log (and
    # queue every session behind its chain); prunes of these records are audited where they happen
    audited = False

    async def authenticate(self) -> Principal:
        if self.request.method != "POST":
            return await super().authenticate()
        # ingest: a hub token of the session's owner carrying the code-log scope (a server token);
        # ownership and the policy are checked against the session in the transaction
        if self.request.headers.get("Authorization", "").startswith("BackendAI "):
            raise Unauthorized("code-log records are shipped with the session's hub token, not a keypair")
        model = await self.settings["hub_auth"].get_user(self, sync=False)
        if not model or model.get("kind", "user") != "user" or SCOPE_CODE_LOG not in model.get("scopes", []):
            raise Unauthorized(f"code-log records are accepted only with a session's own hub token "
                               f"(carrying {SCOPE_CODE_LOG})")
        return Principal(username=model["name"], role=USER, domain="", via="session-token")

    async def get(self):
        p = self.principal
        raw = {k: self.get_query_argument(k, None) for k in CL.FILTERS}
        filters = CL.parse_filters(raw)
        check_filters(p, filters)
        limit, offset = self.page()
        items, total = await self.run(lambda s: CL.list_(s, reach_of(p), filters, limit=limit, offset=offset))
        self.write_json({"items": items, "total": total, "limit": limit, "offset": offset})

    async def post(self):
        batch = CL.parse_batch(self.body())
        source = f"via {self.request.remote_ip}"
        result = await self.run(lambda s: CL.ingest(s, self.principal.username, batch, source=source))
        self.write_json(result)


class CodeLogHandler(APIHandler):
    async def get(self, log_id):
        if not log_id.isdigit() or len(log_id) > 18:
            raise InvalidInput(f"id: {log_id!r} is not a record id", field="id")
        p = self.principal
        self.write_json(await self.run(lambda s: CL.get(s, reach_of(p), int(log_id))))


_T = {"type": "string", "nullable": True}
SCHEMAS = {
    "CodeLog": {"id": {"type": "integer"}, "user": {"type": "string"}, "domain": {"type": "string"},
                "group": {"type": "string"}, "server_name": {"type": "string"}, "session": {"type": "integer"},
                "record_id": {"type": "string"}, "kind": {"type": "string", "enum": list(CL.CodeLogKind.__members__)},
                "status": {"type": "string", "enum": list(CL.CodeLogStatus.__members__)},
                "kernel_id": _T, "msg_id": _T, "execution_count": {"type": "integer", "nullable": True},
                "started_at": {**_T, "format": "date-time"}, "ended_at": {**_T, "format": "date-time"},
                "code": {"type": "string", "description": f"cut at {CL.MAX_CODE_BYTES} bytes"},
                "code_size": {"type": "integer"}, "code_sha256": {"type": "string"}, "truncated": {"type": "boolean"},
                "captured_by": {"type": "string", "description": "where it was captured: records are as "
                                                                 "trustworthy as the session's server"},
                "received_at": {"type": "string", "format": "date-time"}},
    "CodeLogIngest": {"received": {"type": "integer"}, "stored": {"type": "integer"},
                      "duplicates": {"type": "integer"}},
}
_RECORD = {"type": "object", "additionalProperties": False, "required": ["id"], "properties": {
    "id": {"type": "string", "pattern": CL.RECORD_ID_RE.pattern, "description": "unique within the session"},
    "kind": {"type": "string", "enum": list(CL.INGEST_KINDS)},
    "status": {"type": "string", "enum": list(CL.CodeLogStatus.__members__)},
    "kernel_id": _T, "msg_id": _T, "execution_count": {"type": "integer", "nullable": True, "minimum": 0},
    "started_at": _T, "ended_at": _T, "code": {"type": "string"}, "code_size": {"type": "integer", "minimum": 0},
    "code_sha256": {"type": "string", "pattern": CL.HEX64_RE.pattern}}}
_TIME = {"type": "string", "format": "date-time"}
ROUTES = [
    Route(r"code-logs", CodeLogsHandler, tag="code-logs", conflicts=None, ops={
        "get": Op(summary="Recorded executions, oldest first (superadmin: all; domain admin: their domain; "
                          "others: their own)", page="CodeLog",
                  query=("user", "domain", "group", ("session", {"type": "integer"}), "server",
                         ("kind", {"type": "string", "enum": list(CL.CodeLogKind.__members__)}),
                         ("status", {"type": "string", "enum": list(CL.CodeLogStatus.__members__)}),
                         ("since", _TIME), ("until", _TIME), "q")),
        "post": Op(summary="Ingest a batch from a session's server (its own hub token); redelivered records "
                           "are stored once; an empty batch is a heartbeat", answer="CodeLogIngest",
                   body={"session": {"type": "integer", "minimum": 1}, "captured_by": {"type": "string"},
                         "records": {"type": "array", "items": _RECORD, "maxItems": CL.MAX_BATCH}},
                   errors={"403": "code_log is off for the session's domain and group",
                           "404": "no such session of this user"})}),
    Route(r"code-logs/([^/]+)", CodeLogHandler, params=("id",), tag="code-logs", conflicts=None,
          ops={"get": Op(answer="CodeLog")}),
]
