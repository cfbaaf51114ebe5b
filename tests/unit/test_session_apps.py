"""The session package's app definitions as data: rserver's command line (checked by the rserver TEST
DOUBLE, which exits non-zero on any flag a session must not use), its files in tmpfs, the Shiny app dir."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "session"))

from backendai_hub_session.apps import rstudio, shiny  # noqa: E402

DOUBLE = REPO / "tests" / "docker" / "rserver_double" / "rserver"


@pytest.fixture
def rserver(tmp_path):
    """The double run by this interpreter (its shebang names the image's venv)."""
    exe = tmp_path / "rserver"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {DOUBLE} \"$@\"\n")
    exe.chmod(0o755)
    return str(exe)


def test_flags_come_from_rserver_help(rserver):
    flags = rstudio.supported_flags(rserver)
    assert {"www-root-path", "server-data-dir", "database-config-file", "www-address", "auth-none"} <= flags


def test_command_has_the_flags_a_session_needs_with_files_in_tmpfs(rserver, tmp_path):
    run_root = tmp_path / "tmpfs"
    run_root.mkdir()
    cmd = rstudio.command(8787, "/user/demo/rs/", exe=rserver, root=str(run_root))
    flags = dict(a[2:].split("=", 1) for a in cmd[1:])
    assert flags["auth-none"] == "1" and flags["www-root-path"] == "/user/demo/rs/rstudio/"
    assert flags["www-address"] == "127.0.0.1" and flags["www-port"] == "8787"
    key = Path(flags["secure-cookie-key-file"])
    assert key.parent.parent == run_root and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert "provider=sqlite" in Path(flags["database-config-file"]).read_text()
    # the double refuses an unknown option as rserver does
    out = subprocess.run([rserver, "--no-such-option=1"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "unrecognised option" in out.stderr


def test_older_rserver_gets_no_unknown_flags(tmp_path):
    old = tmp_path / "rserver"
    old.write_text("#!/bin/sh\necho '  --www-port arg'\necho '  --auth-none arg'\n")
    old.chmod(0o755)
    cmd = rstudio.command(8787, "/user/x/", exe=str(old), root=str(tmp_path))
    assert not [a for a in cmd if a.startswith(("--www-root-path", "--server-data-dir", "--database-config-file"))]


def test_location_with_rservers_own_port_is_rewritten():
    from tornado.httputil import HTTPHeaders

    class R:
        headers = HTTPHeaders({"Location": "http://127.0.0.1:8787/user/demo/rstudio/workspace"})

    class Req:
        host, protocol = "hub.example:8000", "https"

    rstudio.rewrite_netloc(R, Req)
    assert R.headers["Location"] == "https://hub.example:8000/user/demo/rstudio/workspace"


def test_shiny_serves_the_users_app_else_the_bundled_one(tmp_path):
    assert shiny.app_dir(str(tmp_path)) == str(shiny.BUNDLED)
    assert (shiny.BUNDLED / "app.R").is_file()
    (tmp_path / "shiny").mkdir()
    (tmp_path / "shiny" / "app.R").write_text("shinyApp(ui, server)")
    assert shiny.app_dir(str(tmp_path)) == str(tmp_path / "shiny")


def test_polling_pattern_matches_rstudio_events_only():
    import re

    pats = [re.compile(p) for p in rstudio.IDLE_POLLING]
    assert any(p.match("/user/demo/rs/rstudio/events/get_events") for p in pats)
    assert not any(p.match("/user/demo/rs/rstudio/rpc/execute_code") for p in pats)


def test_rserver_binds_loopback_even_when_its_help_cannot_be_read(tmp_path, monkeypatch):
    """With its own auth off, rserver must never listen beyond the container's loopback: the address is
    passed even when ``rserver --help`` fails (a timeout, an odd build) and no flag is known."""
    monkeypatch.setattr(rstudio, "supported_flags", lambda exe: set())
    run_root = tmp_path / "tmpfs"
    run_root.mkdir()
    cmd = rstudio.command(8787, "/user/demo/rs/", exe="/usr/lib/rstudio-server/bin/rserver", root=str(run_root))
    assert "--www-address=127.0.0.1" in cmd and "--auth-none=1" in cmd
