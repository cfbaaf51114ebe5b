"""backendai-hub's JupyterLab extension: the frontend (prebuilt, under labextension/) and its server
part, which holds the stop the hub's service plans for this session and shows it in open terminals, and
forwards the vfolder sidebar's calls to the hub's service with the session's own token."""

from __future__ import annotations

try:
    from ._version import __version__
except ImportError:  # a source checkout that was never built
    __version__ = "0.0.0+unbuilt"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "backendai-hub-labextension"}]


def _jupyter_server_extension_points():
    return [{"module": "backendai_hub_labextension"}]


def _load_jupyter_server_extension(server_app) -> None:
    """Register the API handlers under <base_url>backendai-hub/."""
    from .handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("backendai_hub_labextension %s: planned-stop warnings and the vfolder sidebar's API on",
                        __version__)
