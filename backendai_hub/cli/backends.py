"""The CLI's two back ends behind one interface: the local database, or a running hub's REST API.

The CLI talks to a backend; it does not care which. Both answer with the same dictionaries
(the registry's ``to_dict``) and raise the same :mod:`backendai_hub.errors` types.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .. import audit, code_logs, session_ops, signing
from .. import session_query as Q
from ..usage import query as UQ
from ..db import Database
from ..models import AuditLog
from ..resources import REGISTRY
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, RemoteError, Unavailable

# -- local: straight on the database ---------------------------------------------------------------

class LocalBackend:
    """Operations on the database, each in one transaction that also records it in the audit log
    (a failure is recorded in a transaction of its own)."""

    def __init__(self, db: Database, actor: audit.Actor | None = None):
        self.db = db
        self.actor = actor or audit.local_actor()

    def _audited(self, resource: str, operation: str, key: tuple, work):
        event = audit.Event(resource, operation, f"{resource} {operation}",
                            entity_id="/".join(map(str, key)) if key else None)
        try:
            with self.db.session() as s:
                result = work(s)
                if event.entity_id is None and isinstance(result, dict):
                    event.entity_id = str(next((result[k] for k in ("access_key", "username", "name")
                                                if result.get(k)), "")) or None
                audit.append(s, self.actor, event)
                return result
        except Exception as e:
            audit.record(self.db, self.actor, event.failed(e))
            raise

    def create(self, resource: str, data: dict) -> dict:
        named = tuple(data[k] for k in REGISTRY[resource].key if isinstance(data.get(k), str))
        return self._audited(resource, "create", named if len(named) == len(REGISTRY[resource].key) else (),
                             lambda s: REGISTRY[resource].create(s, self.db.secrets, data))

    def list(self, resource: str, **filters) -> list[dict]:
        res = REGISTRY[resource]
        filters = {k: v for k, v in filters.items() if v is not None}
        with self.db.session() as s:
            return [res.to_dict(o) for o in res.list(s, **filters)]

    def show(self, resource: str, key: tuple) -> dict:
        res = REGISTRY[resource]
        with self.db.session() as s:
            return res.to_dict(res.get(s, *key))

    def update(self, resource: str, key: tuple, data: dict) -> dict:
        res = REGISTRY[resource]
        return self._audited(resource, "update", key, lambda s: res.to_dict(res.update(s, *key, data)))

    def delete(self, resource: str, key: tuple) -> None:
        self._audited(resource, "delete", key, lambda s: REGISTRY[resource].delete(s, *key))

    def audit_page(self, filters: dict, limit: int, offset: int) -> dict:
        q = audit_query(filters)
        with self.db.session(readonly=True) as s:
            rows, total = audit.search(s, q, limit, offset)
            return {"items": [audit.to_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}

    def audit_show(self, row_id: int) -> dict:
        with self.db.session(readonly=True) as s:
            row = s.get(AuditLog, row_id)
            if row is None:
                raise NotFound(f"no audit log row {row_id}")
            return audit.to_dict(row)

    # -- sessions: the database's operator sees every one --------------------------------------------

    def session_page(self, filters: dict, limit: int, offset: int) -> dict:
        parsed = Q.parse_filters(filters)
        with self.db.session(readonly=True) as s:
            rows, total = Q.find(s, Q.Scope(everything=True), parsed, limit, offset)
            return {"items": [Q.to_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}

    def session_show(self, ref: str) -> dict:
        with self.db.session(readonly=True) as s:
            return Q.to_dict(Q.get(s, Q.Scope(everything=True), ref))

    def session_stop(self, ref: str, hub_api_url: str | None = None, hub_token: str | None = None) -> dict:
        """Through the hub's API (the hub owns the server): needs its URL and a token with delete:servers."""
        if not hub_api_url or not hub_token:
            raise Unavailable("'session stop' on the database needs the hub's API: pass --hub-api-url (or set "
                              "JUPYTERHUB_API_URL) and set JUPYTERHUB_API_TOKEN to a token with delete:servers; "
                              "or stop it through the service (BACKEND_ENDPOINT and a keypair)")
        everything = Q.Scope(everything=True)
        sid, user, server = self._audited("session", "stop", (ref,), lambda s: session_ops.mark_stopping(
            s, everything, ref, self.actor.user or self.actor.credential))
        try:
            code = session_ops.stop_server(hub_api_url, hub_token, user, server)
        except RemoteError:
            with self.db.session() as s:
                session_ops.unmark(s, sid, self.actor.user or self.actor.credential)
            raise
        with self.db.session(readonly=code != 404) as s:
            return {**session_ops.settle_stop(s, sid, code), "hub_status": code}

    def session_ping(self, ref: str) -> dict:
        d = self.session_show(ref)
        return {"id": d["id"], "name": d["name"], "user": d["user"], "status": d["status"],
                **session_ops.ping(d["container_id"])}

    def usage(self, query: dict) -> dict:
        """The database's operator sees every session's usage."""
        q = UQ.parse_query(query)
        with self.db.session(readonly=True) as s:
            return UQ.usage(s, Q.Scope(everything=True), q)

    def code_logs(self, filters: dict, limit: int, offset: int) -> dict:
        with self.db.session(readonly=True) as s:
            items, total = code_logs.list_(s, code_logs.Reach(all=True), code_logs.parse_filters(filters),
                                           limit=limit, offset=offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    def code_log(self, log_id: int) -> dict:
        with self.db.session(readonly=True) as s:
            return code_logs.get(s, code_logs.Reach(all=True), log_id)

    def close(self) -> None:
        self.db.dispose()


def audit_query(filters: dict) -> audit.Query:
    """The CLI's audit filters (already parsed) as a query over every row (the database's operator)."""
    return audit.Query(**{k: v for k, v in filters.items() if v is not None})


# -- remote: the hub's REST service, with keypair-signed requests --------------------------------------

_STATUS = {400: InvalidInput, 401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict, 503: Unavailable}


class RemoteBackend:
    """Operations through ``<endpoint>/api/v1/`` signed with a Backend.AI keypair.

    ``endpoint`` is what the Backend.AI client uses too, e.g. ``http://hub:8000/services/backendai``.
    """

    def __init__(self, endpoint: str, access_key: str, secret_key: str, timeout: float = 30):
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"BACKEND_ENDPOINT: {endpoint!r} is not an http(s) URL", field="endpoint")
        if not access_key or not secret_key:
            raise InvalidInput("BACKEND_ACCESS_KEY and BACKEND_SECRET_KEY are needed with BACKEND_ENDPOINT",
                               field="access_key")
        self.endpoint = endpoint.rstrip("/")
        self.host, self.path = parts.netloc, parts.path.rstrip("/")
        self.access_key, self.secret_key, self.timeout = access_key, secret_key, timeout

    @classmethod
    def from_env(cls, endpoint: str | None = None) -> "RemoteBackend":
        return cls(endpoint or os.environ.get("BACKEND_ENDPOINT", ""), os.environ.get("BACKEND_ACCESS_KEY", ""),
                   os.environ.get("BACKEND_SECRET_KEY", ""))

    def request(self, method: str, rel: str, body: Any = None, query: dict | None = None) -> Any:
        path = f"{self.path}/api/v1/{rel}"
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        headers = signing.sign(method, path, host=self.host, access_key=self.access_key,
                               secret_key=self.secret_key, content_type="application/json")
        req = urllib.request.Request(f"{urlsplit(self.endpoint).scheme}://{self.host}{path}", data=data,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only
                payload = resp.read()
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("message", e.reason)
            except ValueError:
                message = str(e.reason)
            raise _STATUS.get(e.code, RemoteError)(f"{message} (HTTP {e.code})") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RemoteError(f"cannot reach {self.endpoint}: {reason}") from None
        return json.loads(payload) if payload else None

    def _item(self, resource: str, key: tuple) -> str:
        return "/".join([REGISTRY[resource].path, *(quote(str(k), safe="") for k in key)])

    def create(self, resource: str, data: dict) -> dict:
        return self.request("POST", REGISTRY[resource].path, data)

    def list(self, resource: str, **filters) -> list[dict]:
        query = {f: filters.get(f) for f in REGISTRY[resource].filters}
        items, offset = [], 0
        while True:
            page = self.request("GET", REGISTRY[resource].path, query={**query, "limit": 1000, "offset": offset})
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    def show(self, resource: str, key: tuple) -> dict:
        return self.request("GET", self._item(resource, key))

    def update(self, resource: str, key: tuple, data: dict) -> dict:
        return self.request("PATCH", self._item(resource, key), data)

    def delete(self, resource: str, key: tuple) -> None:
        self.request("DELETE", self._item(resource, key))

    def audit_page(self, filters: dict, limit: int, offset: int) -> dict:
        query = {("q" if k == "text" else k): (v.isoformat() if hasattr(v, "isoformat") else
                                               getattr(v, "value", v))
                 for k, v in filters.items() if v is not None}
        return self.request("GET", "audit-logs", query={**query, "limit": limit, "offset": offset})

    def audit_show(self, row_id: int) -> dict:
        return self.request("GET", f"audit-logs/{row_id}")

    def session_page(self, filters: dict, limit: int, offset: int) -> dict:
        return self.request("GET", "sessions", query={**filters, "limit": limit, "offset": offset})

    def session_show(self, ref: str) -> dict:
        return self.request("GET", f"sessions/{quote(ref, safe='')}")

    def session_stop(self, ref: str, hub_api_url: str | None = None, hub_token: str | None = None) -> dict:
        return self.request("DELETE", f"sessions/{quote(ref, safe='')}")

    def session_ping(self, ref: str) -> dict:
        return self.request("GET", f"sessions/{quote(ref, safe='')}/ping")

    def usage(self, query: dict) -> dict:
        return self.request("GET", "usage", query=query)

    def code_logs(self, filters: dict, limit: int, offset: int) -> dict:
        return self.request("GET", "code-logs", query={**filters, "limit": limit, "offset": offset})

    def code_log(self, log_id: int) -> dict:
        return self.request("GET", f"code-logs/{log_id}")

    def close(self) -> None:
        pass
