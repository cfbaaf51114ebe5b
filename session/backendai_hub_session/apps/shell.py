"""The web shell's terminal, a jupyter_server extension of the shell image.

- Owner only: the shell holds a keypair that acts as its user, so nobody else reaches it, hub admins
  included (JupyterHub's admin role carries ``access:servers``, which would let them in and act as the
  user under the user's name).
- A browser that reattaches to a terminal gets its recent output replayed (terminado's buffer); the
  terminal queries in it (device attributes, version, cursor position) are dropped from the replay, so
  that the new page does not answer them again into the shell as if typed (tmux asked once, at its
  start, and takes a late answer for keys).
"""

from __future__ import annotations

import os
import re

# queries a terminal answers: DA1/DA2/DA3 (CSI c, CSI > c, CSI = c), XTVERSION (CSI > q), DSR/CPR
# (CSI 5 n, CSI 6 n, CSI ? 6 n), DECRQM (CSI ? Ps $ p), OSC colour queries (OSC 10/11/12/4 ; ? ST)
_QUERIES = re.compile(r"\x1b\[[>=]?[0-9;]*c|\x1b\[>[0-9;]*q|\x1b\[\??[0-9;]*n|\x1b\[\?[0-9;]*\$p"
                      r"|\x1b\](?:1[0-2]|4;[0-9]+);\?(?:\x07|\x1b\\)")
_patched = False


def strip_queries(text: str) -> str:
    """``text`` without the sequences that make a terminal answer (pure)."""
    return _QUERIES.sub("", text)


def _patch_replay() -> None:
    global _patched
    if _patched:
        return
    from terminado.websocket import TermSocket

    open_, read = TermSocket.open, TermSocket.on_pty_read

    def open_replaying(self, *args, **kwargs):
        self._bhub_replaying = True  # terminado's open() replays the buffer synchronously
        try:
            return open_(self, *args, **kwargs)
        finally:
            self._bhub_replaying = False

    def on_pty_read(self, text):
        if getattr(self, "_bhub_replaying", False):
            text = strip_queries(text)
        return read(self, text)

    TermSocket.open, TermSocket.on_pty_read = open_replaying, on_pty_read
    _patched = True


def owner_only(model: dict, owner: str | None) -> bool:
    """Whether a hub identity may reach the shell: only its owner, as a user (pure)."""
    return bool(owner) and model.get("kind", "user") == "user" and model.get("name") == owner


def _patch_access(owner: str | None) -> None:
    from jupyterhub.services.auth import HubAuth

    check = HubAuth.check_scopes
    if getattr(check, "_bhub_owner_only", False):
        return

    def check_scopes(self, required_scopes, user):
        # the single-user server's access check (HTTP and websocket alike): no scope lets a non-owner in
        if not owner_only(user, owner):
            return set()
        return check(self, required_scopes, user)

    check_scopes._bhub_owner_only = True
    HubAuth.check_scopes = check_scopes


def _jupyter_server_extension_points():
    return [{"module": "backendai_hub_session.apps.shell"}]


def _load_jupyter_server_extension(serverapp) -> None:
    _patch_replay()
    _patch_access(os.environ.get("JUPYTERHUB_USER"))
    serverapp.log.info("backendai-hub shell: owner only (%s); terminal replays carry no terminal queries",
                       os.environ.get("JUPYTERHUB_USER"))
