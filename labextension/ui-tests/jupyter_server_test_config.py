"""Server configuration for the Galata tests (no JupyterHub: the extension trusts the signed-in user)."""

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 - c is the config object jupyter passes in
