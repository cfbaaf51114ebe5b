"""[code-log] The spawner's part in the code-execution log: server tokens that may ship records, and the
environment that turns capture on in sessions whose domain or group has ``code_log`` on."""

from __future__ import annotations

from jupyterhub.roles import get_default_roles
from traitlets import HasTraits, Unicode, default

from .. import code_logs
from ..scopes import SCOPE_CODE_LOG


def code_log_token_scopes(spawner) -> list[str]:
    """A server token's scopes: the hub's server role, plus shipping code-log records to the service
    (granted only as far as the user holds them; the scope only where the hub defines it)."""
    from jupyterhub.scopes import scope_definitions  # the hub's table, custom scopes included, at spawn

    server = next(r["scopes"] for r in get_default_roles() if r["name"] == "server")
    extra = {f"access:services!service={spawner.code_log_service}"}
    if SCOPE_CODE_LOG in scope_definitions:
        extra.add(SCOPE_CODE_LOG)
    return sorted({*server, *extra})


class CodeLogMixin(HasTraits):
    """Mixed into the spawner: ``c.BackendAISpawner.code_log_service`` and the session's code-log environment."""

    code_log_service = Unicode(
        "backendai",
        help="Name of the hub-managed service that receives code-log records (``hub_service``'s). Every "
             "server token may call it, with a scope that only ships its own user's records; sessions whose "
             "domain or group has ``code_log`` on get $BACKENDAI_HUB_CODE_LOG=1 and its URL, and record the code "
             "they run.",
    ).tag(config=True)

    @default("server_token_scopes")
    def _default_server_token_scopes(self):
        return code_log_token_scopes

    async def _code_log_env(self) -> None:
        """What a session needs to record its code, when its domain or group says so (after the network:
        the URL is the proxy's, as the session reaches it)."""
        sid = self.session_id
        if not await self._db(lambda s: code_logs.session_logging_on(s, sid)):
            return
        origin = (self.hub_connect_url or "").rstrip("/")
        base = self.hub.base_url.removesuffix("hub/")  # the hub's is <base_url>hub/; services are beside it
        url = f"{origin}{base}services/{self.code_log_service}/api/v1/code-logs"
        self.environment = {**self.environment, "BACKENDAI_HUB_CODE_LOG": "1", "BACKENDAI_HUB_CODE_LOG_URL": url}
