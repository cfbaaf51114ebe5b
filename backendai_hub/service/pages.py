"""HTML pages of the service for browser users, signed in with the hub's OAuth: the self-service page.

The page only reads; what it changes (issue or revoke a key, stop a session) its script asks of the
REST API under ``api/v1/`` with the same OAuth cookie and the XSRF token of the page (``X-XSRFToken``),
so that those writes have one implementation, one set of rules and one audit trail. A new key's
secret exists only in the answer to that POST and in the page's memory: it is never rendered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timezone
from functools import lru_cache
from http import HTTPStatus
from importlib.resources import files

from jinja2 import Environment, PackageLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import web

from ..errors import Unauthorized
from . import page_data, principals
from .backendai_api import handshake
from .rules import Principal

STATIC_DIR = str(files("backendai_hub.service") / "static")
# the page loads its script and style from the service and talks only to the service; nothing inline
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_templates = Environment(loader=PackageLoader("backendai_hub", "templates"), autoescape=select_autoescape())


@lru_cache(maxsize=None)
def _static_version(name: str) -> str:
    with open(f"{STATIC_DIR}/{name}", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def wants_html(accept: str) -> bool:
    """A browser's navigation asks for HTML; the Backend.AI client's handshake does not (``*/*``)."""
    return "text/html" in accept


class PageHandler(HubOAuthenticated, web.RequestHandler):
    """A page for a signed-in browser user: the hub's OAuth cookie names them, or GET is sent to sign in.

    ``self.principal`` is derived from the OAuth token's scopes exactly as the REST API derives it.
    """

    principal: Principal

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    @hub_auth.setter
    def hub_auth(self, auth):  # HubAuthenticated's setter; the application's HubOAuth is the one used
        raise AttributeError("the service's HubOAuth comes from the application's settings")

    def set_default_headers(self):
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-store")

    async def prepare(self):
        model = await self.hub_auth.get_user(self, sync=False)
        if model is not None:
            try:
                model = self.check_hub_user(model)  # the hub's access:services scope for this service
            except UserNotAllowed:
                raise web.HTTPError(403, f"{model.get('name')!r} may not use this service") from None
        if not model or model.get("kind", "user") != "user":
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.get_login_url())  # the hub's OAuth authorize: it signs the user in
                return
            raise web.HTTPError(403, "sign in through the hub first")
        self.current_user = model
        db, scopes = self.settings["db"], frozenset(model.get("scopes", []))

        def derive():
            with db.session(readonly=True) as s:
                return principals.derive_token(s, model["name"], scopes)

        try:
            cred = await asyncio.get_running_loop().run_in_executor(None, derive)
        except Unauthorized as e:
            raise web.HTTPError(403, e.message) from None
        self.principal = cred.principal

    def render_page(self, name: str, **context) -> None:
        prefix = self.settings["service_prefix"]
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_templates.get_template(name).render(
            prefix=prefix, api=f"{prefix}api/v1/", hub_prefix=self.hub_auth.hub_prefix,
            static=lambda f: f"{prefix}static/{f}?v={_static_version(f)}", xsrf_token=self.xsrf_token.decode(),
            **context))

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason or HTTPStatus(status_code).phrase
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_templates.get_template("service/error.html").render(
            status=status_code, reason=self._reason, message=message, prefix=self.settings["service_prefix"],
            hub_prefix=self.hub_auth.hub_prefix,
            static=lambda f: f"{self.settings['service_prefix']}static/{f}?v={_static_version(f)}"))


class RootHandler(PageHandler):
    """``<prefix>``: the self-service page for a browser, the Backend.AI version handshake for clients."""

    async def prepare(self):
        if wants_html(self.request.headers.get("Accept", "")):
            await super().prepare()

    async def get(self):
        if not wants_html(self.request.headers.get("Accept", "")):
            self.clear_header("Content-Security-Policy")
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(handshake(self.settings)))
            return
        p, storage = self.principal, self.settings["vfolder_storage"]

        def read():
            with self.settings["db"].session(readonly=True) as s:
                return page_data.page(s, p, storage, datetime.now(timezone.utc))

        data = await asyncio.get_running_loop().run_in_executor(None, read)
        self.render_page("service/selfservice.html", **data)


class StaticHandler(web.StaticFileHandler):
    """The page's script and style (public: nothing in them is anyone's)."""

    def set_default_headers(self):
        self.set_header("X-Content-Type-Options", "nosniff")


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """``<prefix>oauth_callback``: finishes the hub's OAuth with the application's HubOAuth, which keeps
    the state (next URL, PKCE verifier) that the page's redirect to sign-in stored."""

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    @hub_auth.setter
    def hub_auth(self, auth):
        raise AttributeError("the service's HubOAuth comes from the application's settings")


def routes(prefix: str) -> list:
    return [
        (prefix.rstrip("/") + "/?", RootHandler),
        (f"{prefix}static/(.*)", StaticHandler, {"path": STATIC_DIR}),
        (f"{prefix}oauth_callback", OAuthCallbackHandler),
    ]
