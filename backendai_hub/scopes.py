"""The roles and custom hub scopes of backendai-hub: what the authenticator grants and the service reads."""

from __future__ import annotations

SUPERADMIN, DOMAIN_ADMIN, USER = "superadmin", "domain-admin", "user"

# custom scopes declared in JupyterHub.custom_scopes; the hub grants them through managed roles
SCOPE_ADMIN = "custom:backendai:admin"
SCOPE_DOMAIN_ADMIN = "custom:backendai:domain-admin"
SCOPE_SELF = "custom:backendai:self"
# ship code-log records for one's own sessions, and nothing else: what a session's server token carries
SCOPE_CODE_LOG = "custom:backendai:code-log"
# the vfolder API from one server: what a session's server token carries (filtered
# !server=<user>/<server>) for the JupyterLab sidebar; the service reads it as "this user, from this
# server" and lets it reach only the vfolder routes
SCOPE_VFOLDERS = "custom:backendai:vfolders"
DOMAIN_GROUP_PREFIX = "domain:"  # hub group holding every user of a domain

CUSTOM_SCOPES = {
    SCOPE_ADMIN: {"description": "Administer every domain, group, user, keypair and resource policy."},
    SCOPE_DOMAIN_ADMIN: {"description": "Administer the groups, users and keypairs of one domain "
                                        "(filtered with !group=domain:<name>)."},
    SCOPE_SELF: {"description": "Read your own tenancy and manage your own keypairs."},
    SCOPE_CODE_LOG: {"description": "Ship code-log records of your own sessions (a session's server token)."},
    SCOPE_VFOLDERS: {"description": "Manage your virtual folders from one session (a session's server token, "
                                    "filtered with !server=<user>/<server>)."},
}


def session_server(scopes, username: str) -> str | None:
    """The server a token's ``custom:backendai:vfolders!server=<user>/<server>`` names (its own
    user's only), ``""`` for the default server; None when the token carries no such scope."""
    prefix = f"{SCOPE_VFOLDERS}!server={username}/"
    for scope in scopes:
        if scope.startswith(prefix):
            return scope[len(prefix):]
    return None
