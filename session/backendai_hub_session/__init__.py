"""backendai-hub's session side: the opt-in code-execution log, as a Jupyter server extension.

Inert unless the spawner set ``BACKENDAI_HUB_CODE_LOG=1`` (the session's domain or group has
``code_log`` on): then kernel executions and terminal lines are recorded, buffered under /tmp and
shipped to the service with the session's own token, and JupyterLab shows a notice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path

__version__ = "0.1.0"

HERE = Path(__file__).resolve().parent
ENV_ON = "BACKENDAI_HUB_CODE_LOG"
log = logging.getLogger("backendai_hub_session")


def enabled(environ=os.environ) -> bool:
    return environ.get(ENV_ON) == "1"


def _jupyter_server_extension_points():
    return [{"module": "backendai_hub_session"}]


def _link_jupyter_server_extension(serverapp) -> None:
    """Before the web app exists: our kernel websocket connection, and the notice's stylesheet."""
    if not enabled():
        return
    from .capture import LoggingConnection

    serverapp.kernel_websocket_connection_class = LoggingConnection
    # JupyterLab loads <base>/custom/custom.css when LabApp.custom_css is on: ours comes first
    serverapp.static_custom_path = [str(HERE / "custom"), *serverapp.static_custom_path]
    serverapp.config.LabApp.custom_css = True


def _load_jupyter_server_extension(serverapp) -> None:
    from .apps import install_origin_guard

    install_origin_guard()  # [apps] always: every app route refuses a foreign Origin
    if not enabled():
        return
    from . import capture
    from .buffer import Buffer
    from .shipper import Shipper

    env = os.environ
    url, token = env.get("BACKENDAI_HUB_CODE_LOG_URL", ""), env.get("JUPYTERHUB_API_TOKEN", "")
    try:
        session_id = int(env.get("BACKENDAI_SESSION_ID", ""))
    except ValueError:
        session_id = 0
    if not (url and token and session_id):
        serverapp.log.error("code log: BACKENDAI_HUB_CODE_LOG=1 but the ingest URL, token or session id is "
                            "missing; records are kept in the buffer only")
    buffer = Buffer(env.get("BACKENDAI_HUB_CODE_LOG_DIR", "/tmp/.backendai-code-log"))
    shipper = Shipper(buffer, url, token, session_id, f"session-server {socket.gethostname()}")

    def sink(record: dict) -> None:
        buffer.append(record)
        shipper.poke()

    capture.set_sink(sink)
    terminals = capture.patch_terminals()
    if not isinstance(serverapp.kernel_websocket_connection_class, type) or not issubclass(
            serverapp.kernel_websocket_connection_class, capture.LoggingConnection):
        serverapp.log.warning("code log: kernel_websocket_connection_class is %s, not ours: kernel executions "
                              "are not recorded", serverapp.kernel_websocket_connection_class)
    if url and token and session_id:
        from tornado.ioloop import IOLoop

        IOLoop.current().add_callback(shipper.run)  # the loop the server is about to run
    serverapp.web_app.settings["backendai_code_log"] = shipper
    _on_stop(serverapp, shipper)
    serverapp.log.info("code log: ON (kernels%s); buffer %s, shipping to %s", " and terminals" if terminals else "",
                       buffer.path, url or "nowhere")


def _on_stop(serverapp, shipper) -> None:
    """Ship what is left for a few seconds at shutdown (the rest waits in /tmp for a restart)."""
    original = getattr(serverapp, "_cleanup", None)
    if original is None:
        return

    async def cleanup():
        try:
            await shipper.drain(time.monotonic() + 5)
        except Exception:  # noqa: BLE001
            log.exception("code log: final shipping failed")
        result = original()
        if asyncio.iscoroutine(result):
            await result

    serverapp._cleanup = cleanup
