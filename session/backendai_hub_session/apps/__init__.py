"""Apps inside a session, served by jupyter-server-proxy under the session's prefix (entry points
``jupyter_serverproxy_servers``), and the guard that refuses a foreign ``Origin`` on every app route."""

from __future__ import annotations

import os
import shutil

# Apps listen on the container's loopback only: the hub proxy (through jupyter-server's auth) is the
# one way in. BACKENDAI_HUB_APP_BIND changes that for a benchmark that must reach an app directly.
BIND = "127.0.0.1"


def bind_address(environ=os.environ) -> str:
    return environ.get("BACKENDAI_HUB_APP_BIND") or BIND


def executable(name: str, *fallbacks: str) -> str | None:
    """``name`` on $PATH, else the first executable fallback; None when the image lacks it."""
    for candidate in (shutil.which(name), *fallbacks):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_origin_guard() -> bool:
    """Refuse (403) any app request whose ``Origin`` is not the session's own, HTTP as well as
    websocket, before the proxy opens an upstream connection. jupyter-server-proxy checks Origin only on
    websocket upgrades (tornado's ``check_origin``); a cross-site ``fetch`` with the user's cookie would
    otherwise reach the app. ``ServerApp.allow_origin`` is honoured (``check_origin`` is jupyter-server's)."""
    try:
        from jupyter_server_proxy.handlers import ProxyHandler
    except ImportError:  # an image without jupyter-server-proxy has no app routes to guard
        return False
    if getattr(ProxyHandler.prepare, "_backendai_origin_guard", False):
        return True
    original = ProxyHandler.prepare

    async def prepare(self, *args, **kwargs):
        from tornado import web

        # authentication first (jupyter-server's prepare; an error page needs it done), then the Origin:
        # both before get()/post(), where the proxy first connects upstream
        result = await original(self, *args, **kwargs)
        if self._finished:
            return result
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            self.log.warning("app %s: refused a request from foreign Origin %r", self.request.path, origin)
            raise web.HTTPError(403, "foreign Origin")
        return result

    prepare._backendai_origin_guard = True
    ProxyHandler.prepare = prepare
    return True
