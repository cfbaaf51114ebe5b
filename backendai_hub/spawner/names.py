"""Names of a server's objects: injective over (user, server), and telling other sessions nothing.

Pure functions. Any name derived from a user or server must be injective over every pair the hub
accepts (usernames ``[a-z0-9][a-z0-9._-]{0,63}``; server names JupyterHub 6's slugs, or any string
without '/' that an older hub let in): two servers sharing one name take over each other's objects.
A name that other sessions can see (Docker's embedded DNS answers every container's name on the
session network, and its address back to the name) must not derive from the tenant at all.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

LABEL_SESSION = "ai.backend.hub.session"
LABEL_USER = "ai.backend.hub.user"
LABEL_SERVER = "ai.backend.hub.server"
# which deployment (database) a session belongs to, so that a reconciler never touches another's
LABEL_INSTANCE = "ai.backend.hub.instance"

OAUTH_CLIENT_PREFIX = "jupyterhub-user-"
# quote() never emits '~' once '~' itself is escaped: the one separator no component contains
SERVER_SEPARATOR = "~"


def _component(text: str) -> str:
    # letters, digits and "_.-" stay; everything else (and '~') becomes %XX: legal in a cookie name
    return quote(text, safe="").replace("~", "%7E")


def oauth_client_id(username: str, server_name: str = "") -> str:
    """The hub OAuth client of a server, which its jupyter-server also uses as its cookie's name.

    JupyterHub's default joins user and server with '-', which usernames contain: user 'a' with
    server 'b' and user 'a-b' get one client, and spawning one rewrites the other's redirect. A
    default server keeps JupyterHub's id (``jupyterhub-user-<user>``); a named one appends
    ``~<server>``, and neither component can contain '~'.
    """
    client_id = OAUTH_CLIENT_PREFIX + _component(username)
    return f"{client_id}{SERVER_SEPARATOR}{_component(server_name)}" if server_name else client_id


def container_token() -> str:
    """A fresh random token for one session's container name (96 bits: never guessed, never repeated)."""
    return secrets.token_hex(12)


def session_labels(username: str, server_name: str, session_id: int | None,
                   instance: str | None = None) -> dict[str, str]:
    """Labels of a session's container: how operators and tests find it, since its name is opaque."""
    labels = {LABEL_SESSION: str(session_id), LABEL_USER: username, LABEL_SERVER: server_name}
    if instance:
        labels[LABEL_INSTANCE] = instance
    return labels


def label_filters(username: str, server_name: str | None = None) -> dict[str, list[str]]:
    """docker-py ``containers.list(filters=...)`` for a user's session containers (one server's, if named)."""
    labels = [f"{LABEL_USER}={username}"]
    if server_name is not None:
        labels.append(f"{LABEL_SERVER}={server_name}")
    return {"label": labels}


def firewall_tag(session_id: int, container_id: str) -> str:
    """The tag of one session's egress rules: the container id makes it unique on the engine.

    A session id alone is unique only within one hub's database; two hubs on one host would replace
    and remove each other's rules.
    """
    return f"session-{session_id}.{container_id}"


def legacy_firewall_tag(session_id: int) -> str:
    """The tag sessions started before :func:`firewall_tag` carry (their state has no tag)."""
    return f"session-{session_id}"
