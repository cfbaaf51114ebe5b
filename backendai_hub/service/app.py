"""The REST service: a JupyterHub-managed tornado app mounted at /services/backendai/."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
import docker
from tornado import ioloop, web
from tornado.log import access_log, enable_pretty_logging

from .. import __version__, signing
from ..db import Database
from ..images import ImageCatalog
from ..vfolders.ops import drop_interrupted_clones
from ..vfolders.storage import StorageHosts
from . import agents, compat, domains, groups, keypairs, locks, me, policies, sessions, users, vfolders
from .base import NotFoundHandler
from .culler import Culler
from .openapi import build_spec

API_ROUTES = (domains.ROUTES + groups.ROUTES + users.ROUTES + keypairs.ROUTES + policies.ROUTES
              + me.ROUTES + locks.ROUTES + sessions.ROUTES
              + agents.ROUTES)  # [accelerators]


class OpenAPIHandler(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.settings["openapi"]))


def make_app(db: Database, *, prefix: str = "/services/backendai/", hub_auth: HubOAuth | None = None,
             max_clock_skew: timedelta = timedelta(minutes=15),
             image_aliases: dict | None = None) -> web.Application:
    """Build the application; ``prefix`` is where the hub's proxy mounts it (JUPYTERHUB_SERVICE_PREFIX)."""
    if not prefix.endswith("/"):
        prefix += "/"
    api = f"{prefix}api/v1/"
    handlers = [(f"{api}{route}/?", handler) for route, handler in API_ROUTES + vfolders.ROUTES]
    handlers += [
        (f"{api}openapi.json", OpenAPIHandler),
        (f"{prefix}oauth_callback", HubOAuthCallbackHandler),
        *compat.routes(prefix),
        (f"{api}.*", NotFoundHandler),
    ]
    return web.Application(
        handlers,
        db=db,
        hub_auth=hub_auth or HubOAuth(api_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""), cache_max_age=60),
        replay_cache=signing.ReplayCache(window=max_clock_skew),
        max_clock_skew=max_clock_skew,
        openapi=vfolders.extend_spec(build_spec(API_ROUTES, prefix), prefix),
        vfolder_storage=StorageHosts.instance(),
        image_catalog=ImageCatalog(lambda: docker.from_env().api, image_aliases or {}),
        service_prefix=prefix,
        version=__version__,
        # signs the OAuth cookie of browser sessions; a restart only means signing in again
        cookie_secret=os.environ.get("JUPYTERHUB_COOKIE_SECRET") or secrets.token_bytes(32),
        log_function=log_request,
    )


def log_request(handler: web.RequestHandler) -> None:
    """tornado's access log line, with secrets in the query (transfer URLs carry ``token=``) redacted."""
    status = handler.get_status()
    log = access_log.info if status < 400 else access_log.warning if status < 500 else access_log.error
    req = handler.request
    query = urlencode([(k, "[redacted]" if k.lower() in SECRET_PARAMS else v)
                       for k, v in parse_qsl(req.query, keep_blank_values=True)])
    log("%d %s %s (%s) %.2fms", status, req.method, req.path + (f"?{query}" if query else ""), req.remote_ip,
        1000.0 * req.request_time())


SECRET_PARAMS = frozenset({"token", "access_token", "_xsrf"})


def recover(app: web.Application) -> list[str]:
    """At service start: what a stopped service left half done. Clones cut short are removed (their
    sources are intact; the user clones again)."""
    db, storage = app.settings["db"], app.settings["vfolder_storage"]
    with db.session() as s:
        gone = drop_interrupted_clones(s, storage)
    if gone:
        logging.getLogger("backendai_hub.service").warning(
            "removed %d vfolder(s) whose clone a stop cut short: %s", len(gone), ", ".join(gone))
    return gone


# How the HTTP server reads: a streamed body (tus PATCH) reaches its handler in pieces of up to
# ``chunk_size``, each one recv; tornado's default, 64 KiB, costs a trip through the event loop per
# 64 KiB, which bounded uploads. An upload holds a few pieces at a time (vfolders.UploadHandler).
# ``max_buffer_size`` bounds a body read whole (JSON; transfers are streamed); tornado's is 100 MB.
HTTP_SERVER_OPTIONS = {"chunk_size": 1 << 20, "max_buffer_size": 64 << 20}


def hub_service_role(name: str = "backendai") -> dict:
    """The role (for ``c.JupyterHub.load_roles``) that lets the service stop overdue servers."""
    from .culler import SERVICE_SCOPES

    return {"name": f"{name}-service", "description": "backendai-hub service: enforce session lifetimes",
            "scopes": SERVICE_SCOPES, "services": [name]}


def hub_service(url: str, *, name: str = "backendai", environment: dict | None = None) -> dict:
    """The entry for ``c.JupyterHub.services`` that runs this service under the hub.

    ``environment`` should carry what the service needs to open our database
    (``BACKENDAI_HUB_DB_URL``, ``BACKENDAI_HUB_CRYPT_KEY_FILE`` or ``BACKENDAI_HUB_CRYPT_KEY``).
    """
    import sys

    from .access import CUSTOM_SCOPES

    return {
        "name": name,
        "url": url,
        "command": [sys.executable, "-m", "backendai_hub.service"],
        "environment": dict(environment or {}),
        "oauth_client_allowed_scopes": sorted(CUSTOM_SCOPES),
        "oauth_no_confirm": True,
        "display": True,
    }


def main() -> None:
    """Entry point the hub starts (see `services` in jupyterhub_config.py)."""
    enable_pretty_logging()
    logging.getLogger().setLevel(logging.INFO)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/backendai/")
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    db = Database.instance()
    db.ensure_schema()
    app = make_app(db, prefix=prefix)
    recover(app)
    app.listen(url.port or 80, address=url.hostname or "127.0.0.1", xheaders=True, **HTTP_SERVER_OPTIONS)
    api_url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if api_url and token:
        interval = float(os.environ.get("BACKENDAI_HUB_CULL_INTERVAL", "60"))
        culler = Culler(db, api_url, token, interval=interval)
        ioloop.IOLoop.current().add_callback(culler.run_forever)
    log = logging.getLogger("backendai_hub.service")
    log.info("backendai-hub service at %s%s", url.geturl(), prefix)
    loop = ioloop.IOLoop.current()

    def stop(signum, _frame):
        log.info("Stopping on signal %s", signum)
        loop.add_callback_from_signal(loop.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loop.start()
    db.dispose()
