"""Restarting the real Docker engine the way scripts/ensure-docker.sh starts it (no systemd here).

``restarted(live_restore=...)`` stops the running ``dockerd`` (SIGTERM, as an init system would) and
starts the same command line again, detached with ``setsid`` and its output appended to the log it
had, with ``--live-restore`` set as asked. ``EngineRestarts`` puts the engine back as it found it
(command line, live-restore) when the test ends, whatever happened. Restarting the engine disrupts
everyone who uses it: hold /tmp/bhub-docker.lock for the whole test run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

DAEMON_JSON = Path("/etc/docker/daemon.json")


def _dockerd_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "dockerd":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def live_restore_enabled() -> bool:
    out = subprocess.run(["docker", "info", "-f", "{{.LiveRestoreEnabled}}"], capture_output=True, text=True,
                         timeout=30, check=True)
    return out.stdout.strip() == "true"


class EngineRestarts:
    """The running engine's command line, and restarts of it; ``restore()`` puts it back as found."""

    def __init__(self, state_dir: Path):
        pids = _dockerd_pids()
        assert len(pids) == 1, f"expected one dockerd, found {pids}"
        pid = pids[0]
        self.argv = [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if a]
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        target = os.readlink(f"/proc/{pid}/fd/1")
        # its log, as ensure-docker.sh opened it; else one of ours
        self.log = Path(target) if target.startswith("/") and Path(target).is_file() else state_dir / "dockerd.log"
        self.live_restore = live_restore_enabled()
        self.state_dir = state_dir
        self.config_file: str | None = None
        if DAEMON_JSON.exists() and "live-restore" in json.loads(DAEMON_JSON.read_text() or "{}"):
            # the flag and the file may not both say it: hand dockerd a copy of the file without it
            config = {k: v for k, v in json.loads(DAEMON_JSON.read_text()).items() if k != "live-restore"}
            fd, self.config_file = tempfile.mkstemp(prefix="daemon-", suffix=".json", dir=state_dir)
            with os.fdopen(fd, "w") as f:
                json.dump(config, f)

    def _stop(self, timeout: float = 120) -> None:
        for pid in _dockerd_pids():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _dockerd_pids():
            assert time.monotonic() < deadline, "dockerd did not stop"
            time.sleep(0.2)

    def _start(self, argv: list[str], timeout: float = 90) -> None:
        # as ensure-docker.sh: `setsid nohup dockerd >>log &` from a shell that exits at once, so dockerd
        # is init's child, not ours (a stopped child of the test would linger as a zombie named dockerd)
        subprocess.run(["sh", "-c", 'log="$1"; shift; setsid nohup "$@" >>"$log" 2>&1 </dev/null &', "sh",
                        str(self.log), *argv], cwd=self.cwd, check=True, timeout=30)
        deadline = time.monotonic() + timeout
        while not _engine_answers():
            assert time.monotonic() < deadline, f"dockerd did not answer within {timeout}s (log: {self.log})"
            time.sleep(0.5)

    def restart(self, live_restore: bool) -> None:
        """Stop the engine and start it again with live-restore on or off."""
        argv = [a for a in self.argv if not a.startswith("--live-restore")]
        if self.config_file:
            argv = [a for a in argv if not a.startswith("--config-file")] + [f"--config-file={self.config_file}"]
        self._stop()
        self._start([*argv, f"--live-restore={'true' if live_restore else 'false'}"])
        assert live_restore_enabled() == live_restore

    def restore(self) -> None:
        """The engine as found: its own command line (so live-restore as it was), answering."""
        running = _dockerd_pids()
        if len(running) == 1 and _engine_answers() and live_restore_enabled() == self.live_restore:
            argv = [a for a in Path(f"/proc/{running[0]}/cmdline").read_bytes().decode().split("\0") if a]
            if argv == self.argv:
                return
        self._stop()
        self._start(self.argv)
        assert live_restore_enabled() == self.live_restore
