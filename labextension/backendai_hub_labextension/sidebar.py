"""<base_url>backendai-hub/api/...: the vfolder sidebar's calls, forwarded to the hub's service with this
server's own token (the service checks every permission); see docs/source/sidebar.md for the contract."""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote, urlencode

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

SERVICE_ENV = "BACKENDAI_HUB_SERVICE_URL"
SERVICE_NAME = "backendai"
TIMEOUT = 60.0
_ID = r"([^/]+)"


def service_url(env: Mapping[str, str] = os.environ) -> str | None:
    """The service's ``api/v1/`` URL as this server reaches it: ``$BACKENDAI_HUB_SERVICE_URL`` (the
    spawner sets it), else ``$JUPYTERHUB_API_URL`` with ``hub/api`` replaced by ``services/backendai/``."""
    base = (env.get(SERVICE_ENV) or "").strip()
    if not base:
        api = (env.get("JUPYTERHUB_API_URL") or "").strip().rstrip("/")
        if not api.endswith("/hub/api"):
            return None
        base = f"{api[:-len('hub/api')]}services/{SERVICE_NAME}/"
    return base.rstrip("/") + "/api/v1/"


@dataclass(frozen=True)
class Forward:
    """One call of the service: its method, its path (``{0}``.. are the route's groups, quoted), the query
    arguments passed on, and whether the request's JSON body goes along."""

    method: str
    path: str
    query: tuple[str, ...] = ()
    body: bool = True


class ServiceError(Exception):
    def __init__(self, status: int, payload: dict):
        super().__init__(payload.get("message"))
        self.status, self.payload = status, payload


class ForwardHandler(APIHandler):
    """Forwards each method its route names to the service and answers what the service answered."""

    forwards: Mapping[str, Forward] = {}

    def initialize(self, forwards: Mapping[str, Forward]):
        self.forwards = forwards

    @property
    def _track_activity(self) -> bool:
        # looking at the sidebar (it refreshes itself) is no activity of the session; changes are
        return self.request.method not in ("GET", "HEAD")

    # -- the service ---------------------------------------------------------------------------------

    async def call_service(self, method: str, path: str, query: Mapping[str, str] | None = None,
                           body: object = None) -> tuple[int, object]:
        """(status, JSON) of ``method`` on the service's ``api/v1/<path>``; an error raises ServiceError."""
        base, token = service_url(), os.environ.get("JUPYTERHUB_API_TOKEN")
        if not base or not token:
            raise ServiceError(503, {"message": "this server does not run under backendai-hub's JupyterHub "
                                                "(no JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN): the sidebar "
                                                "has no service to ask", "rule": "no-hub"})
        url = base + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        if data is None and method in ("POST", "PATCH", "PUT"):
            data = b""
        req = HTTPRequest(url, method=method, body=data, request_timeout=TIMEOUT, follow_redirects=False,
                          headers={"Authorization": f"token {token}", "Content-Type": "application/json",
                                   "Accept": "application/json"}, allow_nonstandard_methods=True)
        try:
            resp = await AsyncHTTPClient().fetch(req)
        except HTTPClientError as e:
            resp = e.response
            if resp is None:  # a timeout (599)
                raise ServiceError(504, {"message": f"the backendai-hub service did not answer in {TIMEOUT:.0f} s"}) \
                    from None
        except OSError as e:
            raise ServiceError(502, {"message": f"cannot reach the backendai-hub service: {e.strerror or e}"}) \
                from None
        payload = _json(resp.body)
        if resp.code >= 400:
            if not isinstance(payload, dict) or not isinstance(payload.get("message"), str):
                payload = {"message": f"the backendai-hub service answered HTTP {resp.code} {resp.reason}"}
            raise ServiceError(resp.code, payload)
        return resp.code, payload

    def answer(self, status: int, payload: object) -> None:
        self.set_status(status)
        if status == 204 or payload is None:
            self.finish()
        else:
            self.finish(json.dumps(payload))

    async def forward(self, *args: str) -> None:
        spec = self.forwards.get(self.request.method)
        if spec is None:  # pragma: no cover - tornado answers 405 for a method the class lacks
            raise tornado.web.HTTPError(405)
        path = spec.path.format(*(quote(a, safe="") for a in args))
        query = {k: self.get_query_argument(k) for k in spec.query if self.get_query_argument(k, None) is not None}
        body = self.json_body() if spec.body and self.request.method in ("POST", "PATCH", "PUT") else None
        try:
            status, payload = await self.call_service(spec.method, path, query, body)
        except ServiceError as e:
            self.answer(e.status, e.payload)
            return
        self.answer(status, self.shape(payload))

    def shape(self, payload: object) -> object:
        """What the frontend gets of the service's answer (as it is, unless a route says otherwise)."""
        return payload

    def json_body(self) -> object:
        raw = self.request.body or b""
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise tornado.web.HTTPError(400, "the body is not valid JSON") from None

    def write_error(self, status_code: int, **kwargs):
        # jupyter_server's JSON errors carry "message"; "field" names what was wrong where we know it
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.finish(json.dumps({"message": message, **({"field": "body"} if status_code == 400 else {})}))

    # every method is authenticated (cookie or token) and, on writes, checks the XSRF token
    @tornado.web.authenticated
    async def get(self, *args):
        await self.forward(*args)

    @tornado.web.authenticated
    async def post(self, *args):
        await self.forward(*args)

    @tornado.web.authenticated
    async def patch(self, *args):
        await self.forward(*args)

    @tornado.web.authenticated
    async def delete(self, *args):
        await self.forward(*args)


class FoldersHandler(ForwardHandler):
    """``GET folders``: the overview, with each folder's place in this server's file browser."""

    def shape(self, payload):
        if self.request.method == "GET" and isinstance(payload, dict):
            root = os.path.realpath(self.settings.get("server_root_dir") or os.getcwd())
            for folder in payload.get("folders") or ():
                mount = folder.get("mount") or {}
                path = mount.get("path")
                if isinstance(path, str):
                    rel = posixpath.relpath(path, root) if path.startswith(root.rstrip("/") + "/") else None
                    mount["browser_path"] = rel
        return payload


class DownloadHandler(ForwardHandler):
    """``GET folders/<id>/download?path=&archive=``: a short-lived URL the browser downloads from."""

    async def forward(self, *args: str) -> None:
        body = {"path": self.get_query_argument("path", "")}
        if self.get_query_argument("archive", None):
            body["archive"] = self.get_query_argument("archive")
        try:
            _status, payload = await self.call_service("POST", f"vfolders/{quote(args[0], safe='')}/download-grants",
                                                       body=body)
        except ServiceError as e:
            self.answer(e.status, e.payload)
            return
        self.answer(200, payload)


class InvitationAnswerHandler(ForwardHandler):
    """``POST invitations/<id>/accept|decline``: the service's accept or reject."""

    async def forward(self, inv: str, answer: str) -> None:
        verb = "accept" if answer == "accept" else "reject"
        try:
            status, payload = await self.call_service("POST", f"vfolder-invitations/{quote(inv, safe='')}/{verb}",
                                                      body={})
        except ServiceError as e:
            self.answer(e.status, e.payload)
            return
        self.answer(status, payload)


def _json(raw: bytes | None) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _f(method: str, path: str, *query: str, body: bool = True) -> Forward:
    return Forward(method, path, tuple(query), body)


# local route (under backendai-hub/api/) -> handler, {method: what it forwards to}
ROUTES: list[tuple[str, type, dict[str, Forward]]] = [
    ("folders", FoldersHandler, {"GET": _f("GET", "sidebar", body=False), "POST": _f("POST", "vfolders")}),
    ("trash", ForwardHandler, {"GET": Forward("GET", "vfolders?trash=true&limit=1000", body=False)}),
    (f"folders/{_ID}", ForwardHandler, {"PATCH": _f("PATCH", "vfolders/{0}"),
                                        "DELETE": _f("DELETE", "vfolders/{0}", body=False)}),
    (f"folders/{_ID}/restore", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/restore")}),
    (f"folders/{_ID}/purge", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/purge")}),
    (f"folders/{_ID}/files", ForwardHandler, {"GET": _f("GET", "vfolders/{0}/files", "path", "limit", "offset",
                                                        body=False)}),
    (f"folders/{_ID}/invitations", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/invitations")}),
    (f"folders/{_ID}/share", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/share")}),
    (f"folders/{_ID}/unshare", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/unshare")}),
    (f"folders/{_ID}/leave", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/leave")}),
    (f"folders/{_ID}/collaborators", ForwardHandler, {"GET": _f("GET", "vfolders/{0}/collaborators", body=False)}),
    (f"folders/{_ID}/collaborators/{_ID}", ForwardHandler,
     {"DELETE": _f("DELETE", "vfolders/{0}/collaborators/{1}", body=False)}),
    (f"folders/{_ID}/clone", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/clone")}),
    (f"tasks/{_ID}", ForwardHandler, {"GET": _f("GET", "tasks/{0}", body=False)}),
    (f"folders/{_ID}/uploads", ForwardHandler, {"POST": _f("POST", "vfolders/{0}/upload-grants")}),
    (f"folders/{_ID}/uploads/{_ID}", ForwardHandler,
     {"DELETE": _f("DELETE", "vfolders/{0}/uploads/{1}", body=False)}),
    (f"folders/{_ID}/download", DownloadHandler, {"GET": _f("POST", "vfolders/{0}/download-grants")}),
    ("invitations", ForwardHandler, {"GET": _f("GET", "vfolder-invitations", body=False)}),
    (f"invitations/{_ID}", ForwardHandler, {"DELETE": _f("DELETE", "vfolder-invitations/{0}", body=False)}),
    (f"invitations/{_ID}/(accept|decline)", InvitationAnswerHandler, {"POST": _f("POST", "")}),
    ("session/restart", ForwardHandler, {"POST": _f("POST", "sidebar/restart")}),
]


def _methods(handler: type, forwards: Mapping[str, Forward]) -> type:
    """A handler class that serves only the methods its route forwards (tornado answers 405 to others)."""
    name = re.sub(r"\W", "", handler.__name__) + "_" + "_".join(sorted(forwards))
    return type(name, (handler,), {"SUPPORTED_METHODS": tuple(forwards)})


def handlers(base_url: str) -> list[tuple]:
    out = []
    for pattern, handler, forwards in ROUTES:
        cls = _methods(handler, forwards)
        out.append((url_path_join(base_url, "backendai-hub", "api", pattern), cls, {"forwards": forwards}))
    return out
