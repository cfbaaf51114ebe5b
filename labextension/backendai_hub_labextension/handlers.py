"""<base_url>backendai-hub/cull: GET the planned stop (the frontend polls it), PUT it (the hub's service);
<base_url>backendai-hub/api/...: the vfolder sidebar's calls (sidebar.py)."""

from __future__ import annotations

import hmac
import json
import os

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from . import cull, sidebar

STATE = "backendai_hub_planned_stop"


def _from_the_service(request) -> bool:
    """Under JupyterHub, only a request carrying this server's own token may plan a stop: the hub's
    service reads it from the container and uses it for this server alone (never a token of its own,
    which a server its user controls could keep). The session's user signed in through the hub (cookie,
    their API tokens) may not fake or clear one; nor may an admin. A server outside JupyterHub
    (development) trusts its authenticated user."""
    own = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not own:
        return True
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() not in ("token", "bearer") or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), own.encode())


class CullHandler(APIHandler):
    # the service's and the frontend's checks are no activity of the session
    _track_activity = False

    @tornado.web.authenticated
    def get(self):
        self.finish(json.dumps(self.settings.get(STATE, cull.PlannedStop()).to_dict()))

    @tornado.web.authenticated
    def put(self):
        if not _from_the_service(self.request):
            self.set_status(403)
            self.finish(json.dumps({"message": "only the hub's service may plan a stop of this session",
                                    "rule": "hub-service-only"}))
            return
        try:
            stop = cull.parse(json.loads(self.request.body or b"null"))
        except ValueError as e:  # JSON errors and BadInput
            self.set_status(400)
            self.finish(json.dumps({"message": str(e), "field": getattr(e, "field", "body")}))
            return
        previous = self.settings.get(STATE)
        self.settings[STATE] = stop
        shown = 0
        if stop.stop_at is not None or (previous is not None and previous.stop_at is not None):
            shown = cull.show_in_terminals(self.settings, cull.banner(stop))
        self.log.info("backendai-hub: planned stop %s (%s); shown in %d terminal(s)",
                      stop.stop_at.isoformat() if stop.stop_at else "off", stop.reason or "-", shown)
        self.finish(json.dumps({**stop.to_dict(), "terminals": shown}))


def setup_handlers(web_app) -> None:
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, "backendai-hub", "cull"), CullHandler),
                                 *sidebar.handlers(base)])
