"""The processes of `benchmarks/vfolder_transfer.py`: a hub from `vfolder_hub_config.py`, CPU time and RSS by pid."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import REPO

if str(REPO) not in sys.path:  # the harness lives in tests/, importable from the repo root
    sys.path.insert(0, str(REPO))

from tests.hubproc import free_port_block, wait_for_hub  # noqa: E402
from tests.integration.vfolder_harness import API  # noqa: E402


# -- processes ------------------------------------------------------------------------------------------

def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included)."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[tuple[int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int(_stat(int(d.name))[1]) == pid:
                    out.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, IndexError, ValueError):
                continue
    return out


class RSSSampler:
    """The service's VmRSS every 20 ms, and VmHWM (reset at the start where the kernel allows)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.baseline = status_kib(pid, "VmRSS")
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        hwm = status_kib(self.pid, "VmHWM") if self.hwm_reset else 0
        self.result = {"baseline_kib": self.baseline, "peak_sampled_kib": self.peak,
                       "vmhwm_kib": hwm if self.hwm_reset else None,
                       "growth_kib": max(self.peak, hwm) - self.baseline}


class BenchHub:
    """JupyterHub + configurable-http-proxy + our service (benchmarks/vfolder_hub_config.py)."""

    def __init__(self, state: Path, template: Path, storage: Path, *, repo: Path = REPO, listener: bool = False):
        self.state, self.storage, self.repo = state, storage, repo
        self.port = free_port_block(5)
        self.url = f"http://127.0.0.1:{self.port}"  # the proxy's public port
        self.service_port = self.port + 3
        self.listener_port = self.port + 4 if listener else None  # the public transfer listener
        self.log = state / "hub.log"
        self.env = {**os.environ, "BENCH_VF_STATE": str(state), "BENCH_VF_PORT": str(self.port),
                    "BENCH_VF_DB": f"sqlite:///{template / 'template.sqlite'}",
                    "BENCH_VF_KEY": str(template / "key"), "BENCH_VF_STORAGE": str(storage)}
        if listener:
            self.env["BENCH_VF_LISTENER"] = "1"
        if repo != REPO:  # another revision's package, ahead of this checkout's (editable) install
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("jupyterhub")), "-f",
                 str(self.repo / "benchmarks" / "vfolder_hub_config.py")],
                cwd=self.state, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_hub(self.url, self.proc, self.log, timeout, what="benchmark hub")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the service answers through the proxy
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", API + "openapi.json")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"the service did not answer through the proxy:\n{self.log.read_text()[-3000:]}")
        kids = children(self.proc.pid)
        self.service_pid = next(p for p, cmd in kids if "backendai_hub.service" in cmd)
        self.proxy_pid = next(p for p, cmd in kids if "configurable-http-proxy" in cmd)

    def stop(self) -> None:
        from tests.hubproc import stop_group

        stop_group(self.proc, 30)
