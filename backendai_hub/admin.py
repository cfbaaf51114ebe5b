"""Admin operations behind one interface: on the local database, or on a running hub's REST API.

The CLI talks to a backend; it does not care which. Both answer with the same dictionaries
(``tenancy.*_to_dict``) and raise the same :mod:`backendai_hub.errors` types.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import quote, urlencode, urlsplit

from . import signing
from . import tenancy as T
from .db import Database
from .errors import Conflict, Forbidden, InvalidInput, NotFound, TenancyError

RESOURCES = ("domain", "group", "user", "keypair", "policy")


class RemoteError(TenancyError):
    """The hub could not be reached, or failed on its side."""

    status = 502


# -- local: straight on the database ---------------------------------------------------------------

_LOCAL: dict[str, dict[str, Callable]] = {
    "domain": dict(create=T.domains.create, get=T.domains.get, list=T.domains.list_, update=T.domains.update,
                   delete=T.domains.delete, to_dict=T.domains.to_dict),
    "group": dict(create=T.groups.create, get=T.groups.get, list=T.groups.list_, update=T.groups.update,
                  delete=T.groups.delete, to_dict=T.groups.to_dict),
    "user": dict(create=T.users.create, get=T.users.get, list=T.users.list_, update=T.users.update,
                 delete=T.users.delete, to_dict=T.users.to_dict),
    "keypair": dict(get=T.keypairs.get, list=T.keypairs.list_, update=T.keypairs.update, delete=T.keypairs.delete,
                    to_dict=T.keypairs.to_dict),
}


class LocalBackend:
    """Operations on the database, each in one transaction."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, resource: str, data: dict) -> dict:
        with self.db.session() as s:
            if resource == "keypair":
                kp, secret = T.keypairs.issue(s, self.db.secrets, data)
                return {**T.keypairs.to_dict(kp), "secret_key": secret}
            if resource == "policy":
                data = dict(data)
                kind = data.pop("kind", "keypair")
                return T.policies.to_dict(T.policies.create(s, kind, data))
            ops = _LOCAL[resource]
            return ops["to_dict"](ops["create"](s, data))

    def list(self, resource: str, **filters) -> list[dict]:
        filters = {k: v for k, v in filters.items() if v is not None}
        with self.db.session() as s:
            if resource == "policy":
                return [T.policies.to_dict(p) for p in T.policies.list_(s, filters.get("kind"))]
            ops = _LOCAL[resource]
            return [ops["to_dict"](o) for o in ops["list"](s, **filters)]

    def show(self, resource: str, key: tuple) -> dict:
        with self.db.session() as s:
            if resource == "policy":
                return T.policies.to_dict(T.policies.get(s, *key))
            ops = _LOCAL[resource]
            return ops["to_dict"](ops["get"](s, *key))

    def update(self, resource: str, key: tuple, data: dict) -> dict:
        with self.db.session() as s:
            if resource == "policy":
                return T.policies.to_dict(T.policies.update(s, *key, data))
            ops = _LOCAL[resource]
            return ops["to_dict"](ops["update"](s, *key, data))

    def delete(self, resource: str, key: tuple) -> None:
        with self.db.session() as s:
            if resource == "policy":
                T.policies.delete(s, *key)
            else:
                _LOCAL[resource]["delete"](s, *key)

    def close(self) -> None:
        self.db.dispose()


# -- remote: the hub's REST service, with keypair-signed requests --------------------------------------

_PATHS = {"domain": "domains", "group": "groups", "user": "users", "keypair": "keypairs",
          "policy": "resource-policies"}
_FILTERS = {"group": {"domain": "domain"}, "user": {"domain": "domain", "group": "group"},
            "keypair": {"user": "user"}, "policy": {"kind": "kind"}}
_STATUS = {400: InvalidInput, 401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict}


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
        return "/".join([_PATHS[resource], *(quote(str(k), safe="") for k in key)])

    def create(self, resource: str, data: dict) -> dict:
        return self.request("POST", _PATHS[resource], data)

    def list(self, resource: str, **filters) -> list[dict]:
        query = {q: filters.get(f) for f, q in _FILTERS.get(resource, {}).items()}
        items, offset = [], 0
        while True:
            page = self.request("GET", _PATHS[resource], query={**query, "limit": 1000, "offset": offset})
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

    def close(self) -> None:
        pass
