"""The REST service: a JupyterHub-managed tornado app mounted at /services/backendai/."""

from __future__ import annotations

import json
import logging
import os
import secrets
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

import docker
from jupyterhub.services.auth import HubOAuth
from tornado import web
from tornado.log import access_log

from .. import __version__, signing
from ..db import Database
from ..images import ImageCatalog
from ..resources import REGISTRY
from ..vfolders.clone import drop_interrupted_clones
from ..vfolders.storage import StorageHosts
from . import (agents, audit_logs, backendai_api, backendai_graphql, backendai_sessions, backendai_usage, code_logs,
               domains, downloads, groups, images, keypairs, locks, me, pages, policies, sessions, shell, sidebar, uploads,
               usage, usage_page, users, vfolders)
from .base import NotFoundHandler
from .openapi import build_spec

# the service's one route list under api/v1/: tornado serves it, the OpenAPI document describes it
API_ROUTES = (domains.ROUTES + groups.ROUTES + users.ROUTES + keypairs.ROUTES + policies.ROUTES
              + me.ROUTES + locks.ROUTES + sessions.ROUTES + images.ROUTES + agents.ROUTES + vfolders.ROUTES
              + uploads.ROUTES + downloads.ROUTES + audit_logs.ROUTES + code_logs.ROUTES + shell.ROUTES
              + usage.ROUTES + sidebar.ROUTES)
SCHEMAS = {**{r.schema: r.output for r in REGISTRY.values()}, **locks.SCHEMAS, **sessions.SCHEMAS,
           **images.SCHEMAS, **agents.SCHEMAS, **vfolders.SCHEMAS, **audit_logs.SCHEMAS, **code_logs.SCHEMAS,
           **shell.SCHEMAS, **usage.SCHEMAS, **sidebar.SCHEMAS}


class OpenAPIHandler(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.settings["openapi"]))


def make_app(db: Database, *, prefix: str = "/services/backendai/", hub_auth: HubOAuth | None = None,
             max_clock_skew: timedelta = timedelta(minutes=15), image_aliases: dict | None = None,
             storage: StorageHosts | None = None, upload_grant_ttl: float = sidebar.GRANT_TTL) -> web.Application:
    """Build the application; ``prefix`` is where the hub's proxy mounts it (JUPYTERHUB_SERVICE_PREFIX)."""
    if not prefix.endswith("/"):
        prefix += "/"
    api = f"{prefix}api/v1/"
    handlers = [route.tornado(api) for route in API_ROUTES]
    handlers += [
        (f"{api}openapi.json", OpenAPIHandler),
        *pages.routes(prefix),
        *backendai_api.routes(prefix),
        *[(f"{prefix}{route}", handler)
          for route, handler in backendai_graphql.ROUTES + backendai_sessions.ROUTES + backendai_usage.ROUTES
          + usage_page.ROUTES],
        (f"{api}.*", NotFoundHandler),
    ]
    return web.Application(
        handlers,
        db=db,
        hub_auth=hub_auth or HubOAuth(api_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""), cache_max_age=60),
        replay_cache=signing.ReplayCache(window=max_clock_skew),
        max_clock_skew=max_clock_skew,
        openapi=build_spec(API_ROUTES, SCHEMAS, prefix),
        vfolder_storage=storage or StorageHosts.instance(),
        image_catalog=ImageCatalog(lambda: docker.from_env().api, image_aliases or {}),
        service_prefix=prefix,
        upload_grant_ttl=upload_grant_ttl,
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
