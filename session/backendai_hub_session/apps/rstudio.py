"""RStudio Server at <prefix>/rstudio/, launched the way jupyter-rsession-proxy does: as the session user
(no root), RStudio's own auth off because the hub proxy authenticates, ``--www-root-path`` set to the
session's prefix, its secure-cookie key, data dir and database in the session's tmpfs."""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import tempfile
import uuid
from functools import lru_cache
from urllib.parse import urlparse, urlunparse

from . import bind_address, executable

PORT = 8787  # fixed, as the image's ai.backend.service-ports label says
RSERVER_FALLBACK = "/usr/lib/rstudio-server/bin/rserver"
# RStudio's client long-polls this while the browser tab merely stays open: it is no activity
IDLE_POLLING = [r".*/rstudio/events/get_events.*", r".*/rstudio/rpc/get_events.*"]


def rserver() -> str | None:
    return executable("rserver", os.environ.get("RSERVER", ""), RSERVER_FALLBACK)


@lru_cache(maxsize=4)
def supported_flags(exe: str) -> frozenset[str]:
    """The option names ``rserver --help`` lists (older releases lack some of them)."""
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"--([a-z][a-z0-9-]*)", out.stdout + out.stderr))


def runtime_dir(root: str | None = None) -> str:
    """A private directory in the session's tmpfs (/tmp) for the key, the data dir and the database."""
    d = tempfile.mkdtemp(prefix="rstudio-", dir=root or os.environ.get("BACKENDAI_HUB_RUNTIME_DIR") or "/tmp")
    os.chmod(d, 0o700)
    return d


def command(port: int, base_url: str, *, exe: str | None = None, root: str | None = None) -> list[str]:
    """rserver's command line for the session user; files it needs are written under ``root``."""
    exe = exe or rserver()
    if exe is None:
        raise RuntimeError("this image has no rserver (RStudio Server)")
    run = runtime_dir(root)
    key = os.path.join(run, "secure-cookie-key")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(str(uuid.uuid4()))
    data = os.path.join(run, "data")
    os.mkdir(data, 0o700)
    db = os.path.join(run, "database.conf")
    with open(db, "w") as f:
        f.write(f"provider=sqlite\ndirectory={data}\n")
    flags = supported_flags(exe)
    cmd = [exe, "--auth-none=1", "--www-frame-origin=same", f"--www-port={port}",
           "--www-verify-user-agent=0", f"--secure-cookie-key-file={key}", f"--server-user={getpass.getuser()}",
           # always: rserver without it listens on every interface, with its own auth off
           f"--www-address={bind_address()}"]
    if "www-root-path" in flags:
        cmd.append(f"--www-root-path={base_url}rstudio/")
    if "server-data-dir" in flags:
        cmd.append(f"--server-data-dir={data}")
    if "database-config-file" in flags:
        cmd.append(f"--database-config-file={db}")
    if "server-daemonize" in flags:
        cmd.append("--server-daemonize=0")
    return cmd


def rewrite_netloc(response, request) -> None:
    """rserver may put its own host:port into Location; the browser must stay on the hub's."""
    for header, value in response.headers.get_all():
        if header == "Location":
            u = urlparse(value)
            if u.netloc and u.netloc != request.host:
                response.headers[header] = urlunparse(u._replace(scheme=request.protocol, netloc=request.host))


def setup() -> dict:
    """The jupyter-server-proxy entry point (``jupyter_serverproxy_servers``)."""

    def _command(port, base_url):
        return command(port, base_url)

    return {
        "command": _command,
        "port": PORT,
        "timeout": 30,
        "environment": {"USER": getpass.getuser()},
        "rewrite_response": rewrite_netloc,
        "exclude_last_activity_patterns": IDLE_POLLING,
        "launcher_entry": {"title": "RStudio", "enabled": rserver() is not None, "category": "Notebook"},
    }
