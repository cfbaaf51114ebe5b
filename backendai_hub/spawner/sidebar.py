"""[sidebar] The spawner's part in the JupyterLab vfolder sidebar: a server token that may use the vfolder API
as its user from this server, and the service's URL in the session's environment."""

from __future__ import annotations

from traitlets import HasTraits, default

from ..scopes import SCOPE_VFOLDERS
from .code_log import code_log_token_scopes

SERVICE_ENV = "BACKENDAI_HUB_SERVICE_URL"


def session_token_scopes(spawner) -> list[str]:
    """A server token's scopes (``Spawner.server_token_scopes``): the hub's server role, the service, shipping
    code-log records, and the vfolder API filtered to this server (``!server`` becomes
    ``!server=<user>/<server>``). The hub grants each only as far as the user's roles hold it, so the token
    never does more than its user may; the service reads the filter as "this session"."""
    from jupyterhub.scopes import scope_definitions  # the hub's table, custom scopes included, at spawn

    scopes = set(code_log_token_scopes(spawner))
    if SCOPE_VFOLDERS in scope_definitions:
        scopes.add(f"{SCOPE_VFOLDERS}!server")
    return sorted(scopes)


def service_url(origin: str, hub_base_url: str, service: str) -> str | None:
    """The service's URL as the session reaches it: the proxy's ``origin`` (the hub's connect URL) and the
    hub's base URL (``<base_url>hub/``; services are beside it at ``<base_url>services/<service>/``)."""
    if not origin:
        return None
    base = "/" + hub_base_url.strip("/").removesuffix("hub").strip("/")
    return f"{origin.rstrip('/')}{base.rstrip('/')}/services/{service}/"


class SidebarMixin(HasTraits):
    """Mixed into the spawner (before CodeLogMixin): the server token's scopes and $BACKENDAI_HUB_SERVICE_URL."""

    @default("server_token_scopes")
    def _default_server_token_scopes(self):
        return session_token_scopes

    def get_env(self):
        env = super().get_env()
        url = service_url(self.hub_connect_url or "", self.hub.base_url, self.code_log_service)
        if url:
            env[SERVICE_ENV] = url
        return env
