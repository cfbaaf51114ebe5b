"""A Shiny app at <prefix>/shiny/: R's own web server (httpuv) on the loopback, reached through the hub proxy.
It serves ``~/shiny`` when that holds an ``app.R``, else the bundled echo app."""

from __future__ import annotations

import os
from pathlib import Path

from . import bind_address, executable

PORT = 3838
BUNDLED = Path(__file__).resolve().parent / "shiny_echo"


def app_dir(home: str | None = None) -> str:
    own = Path(home or os.environ.get("HOME", "/home/work")) / "shiny"
    return str(own if (own / "app.R").is_file() else BUNDLED)


def command(port: int) -> list[str]:
    r = executable("R")
    if r is None:
        raise RuntimeError("this image has no R")
    # the directory and address go through the environment: no quoting of paths into R code
    return [r, "--no-save", "--no-restore", "--quiet", "-e",
            "shiny::runApp(Sys.getenv('BACKENDAI_SHINY_APP'), port = as.integer(Sys.getenv('BACKENDAI_SHINY_PORT')),"
            " host = Sys.getenv('BACKENDAI_SHINY_HOST'), launch.browser = FALSE)"]


def setup() -> dict:
    """The jupyter-server-proxy entry point (``jupyter_serverproxy_servers``)."""

    def _command(port):
        return command(port)

    def _environment(port):
        return {"BACKENDAI_SHINY_APP": app_dir(), "BACKENDAI_SHINY_PORT": str(port),
                "BACKENDAI_SHINY_HOST": bind_address()}

    return {
        "command": _command,
        "environment": _environment,
        "port": PORT,
        "timeout": 60,
        "launcher_entry": {"title": "Shiny", "enabled": executable("R") is not None, "category": "Notebook"},
    }
