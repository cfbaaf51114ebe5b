"""Run the embedded demo config (`jupyterhub_config.py`) as a real hub process for tests."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(n: int = 3) -> int:
    """A base port such that base..base+n-1 are all free on 127.0.0.1, taken below the kernel's ephemeral
    range: a port from that range (what binding port 0 gives) can be handed to some outgoing connection
    in the seconds between this check and the hub's processes binding it ("Address already in use")."""
    low, _high = _ephemeral_range()
    top = max(low, 12000) - n
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(10000, top) if top > 10000 else rng.randrange(1024, 65535 - n)
        try:
            socks = []
            for p in range(base, base + n):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port block")


def stop_group(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM a process started with ``start_new_session`` and its children; SIGKILL after ``timeout``."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_hub(url: str, proc: subprocess.Popen, log: Path, timeout: float, what: str = "hub") -> None:
    """Wait until a hub process answers /hub/health; fail with its log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/hub/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not come up in {timeout}s:\n{log.read_text()[-3000:]}")


class HubProcess:
    """A JupyterHub started from the repository's jupyterhub_config.py, in its own state dir."""

    def __init__(self, state: Path, extra_env: dict | None = None, db_url: str | None = None):
        self.state = state
        # our database: the SQLite file in the state dir unless a URL is given (e.g. PostgreSQL)
        self.db_url = db_url or f"sqlite:///{state / 'backendai_hub.sqlite'}"
        self.port = free_port_block(4)
        self.url = f"http://127.0.0.1:{self.port}"
        self.network = f"bhub-test-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "BACKENDAI_HUB_STATE": str(state), "BACKENDAI_HUB_PORT": str(self.port),
                    "BACKENDAI_HUB_NETWORK": self.network, **(extra_env or {})}
        self.env.pop("BACKENDAI_HUB_DB_URL", None)
        if db_url:
            self.env["BACKENDAI_HUB_DB_URL"] = db_url
        self.proc: subprocess.Popen | None = None
        self.log = state / "hub.log"

    def start(self, timeout: float = 60) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        jupyterhub = Path(sys.executable).with_name("jupyterhub")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(jupyterhub), "-f", str(REPO / "jupyterhub_config.py")],
                                         cwd=self.state, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_for_hub(self.url, self.proc, self.log, timeout)

    @property
    def credentials(self) -> dict:
        return json.loads((self.state / "credentials.json").read_text())

    def stop(self, keep_sessions: bool = False) -> None:
        """Stop the hub; unless ``keep_sessions``, also its session containers and network."""
        stop_group(self.proc, 20)
        if not keep_sessions:
            self.remove_network()
            self.unmount_folders()

    def unmount_folders(self) -> None:
        """Unmount the loopback quota images of this hub's vfolders (they outlive the hub by design)."""
        mine = str(self.state.resolve()) + "/"
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(mine)]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", point], check=False, capture_output=True)

    def remove_network(self) -> None:
        """Take down the session network this hub made, with its host guard."""
        import docker

        from backendai_hub.spawner.firewall import Firewall
        from backendai_hub.spawner.network import bridge_name, remove_session_network

        client = docker.from_env()
        for c in client.containers.list(all=True, filters={"network": self.network}):
            c.remove(force=True)
        Firewall().remove_host_guard(bridge_name(self.network))
        remove_session_network(client, self.network)

    def login(self, username: str, password: str) -> tuple[requests.Session, requests.Response]:
        s = requests.Session()
        s.get(f"{self.url}/hub/login", timeout=10)
        r = s.post(f"{self.url}/hub/login?next=", timeout=20, allow_redirects=False,
                   data={"username": username, "password": password, "_xsrf": s.cookies.get("_xsrf", "")})
        return s, r


def hub_fixture(name: str, *, scope: str = "module", doc: str | None = None, **extra_env: str):
    """A fixture that runs a HubProcess of its own (state dir ``name``, ``extra_env`` over the demo
    config) for the ``scope`` and stops it with its sessions; it needs the Docker engine."""

    def hub(tmp_path_factory, docker_available):
        h = HubProcess(tmp_path_factory.mktemp(name), extra_env=extra_env)
        h.start()
        yield h
        h.stop()

    hub.__doc__ = doc or f"A hub of its own ({name})."
    return pytest.fixture(scope=scope)(hub)


def hub_token(hub: HubProcess, username: str, password: str, note: str = "test") -> str:
    """Sign in through the form, then create an API token as that user (scopes: inherit)."""
    s, r = hub.login(username, password)
    assert r.status_code == 302, r.text[:300]
    r = s.post(f"{hub.url}/hub/api/users/{username}/tokens", json={"note": note},
               headers={"X-XSRFToken": s.cookies.get("_xsrf", "")}, timeout=10)
    r.raise_for_status()
    return r.json()["token"]


def user_tokens(hub: HubProcess, users=("admin", "manager", "demo")) -> dict[str, str]:
    """An API token for each of the demo's ``users``, signed in with their passwords."""
    return {who: hub_token(hub, who, hub.credentials[who]["password"]) for who in users}


def admin_token(hub: HubProcess) -> str:
    """An admin's API token, with the demo users signed in once so that they exist in the hub."""
    for who in ("demo", "manager"):
        assert hub.login(who, hub.credentials[who]["password"])[1].status_code == 302
    return hub_token(hub, "admin", hub.credentials["admin"]["password"])


def session_container(hub: HubProcess, user: str = "demo", name: str = ""):
    """The Docker container of a user's (default or named) server on ``hub``'s session network, found by
    its labels: container names are opaque (random per start), so sessions cannot guess each other's."""
    import docker

    from backendai_hub.spawner.names import label_filters

    found = docker.from_env().containers.list(filters={**label_filters(user, name), "network": hub.network})
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def run_cli(hub: HubProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`backendai-hub` against the hub's database (local mode)."""
    env = {**os.environ, "BACKENDAI_HUB_DB_URL": hub.db_url,
           "BACKENDAI_HUB_CRYPT_KEY_FILE": str(hub.state / "backendai_hub.key")}
    env.pop("BACKENDAI_HUB_CRYPT_KEY", None)
    return subprocess.run([sys.executable, "-m", "backendai_hub.cli", *args], input=stdin, text=True,
                          capture_output=True, env=env, cwd=REPO)


def hub_api(hub: HubProcess, token: str, method: str, path: str, **kw) -> requests.Response:
    """A call to the hub's REST API (``path`` relative to /hub/api/) with a token."""
    return _with_token(token, method, f"{hub.url}/hub/api/{path}", kw.pop("timeout", 120), **kw)


def service_api(hub: HubProcess, token: str, method: str, path: str, **kw) -> requests.Response:
    """A call to our REST service through the hub's proxy (``path`` relative to its api/v1/) with a token."""
    return _with_token(token, method, f"{hub.url}/services/backendai/api/v1/{path}", kw.pop("timeout", 60), **kw)


def _with_token(token: str, method: str, url: str, timeout: float, headers: dict | None = None, **kw):
    return requests.request(method, url, headers={"Authorization": f"token {token}", **(headers or {})},
                            timeout=timeout, **kw)


def server_path(user: str, name: str = "") -> str:
    return f"users/{user}/servers/{name}" if name else f"users/{user}/server"


def wait_ready(hub: HubProcess, token: str, user: str = "demo", name: str = "", timeout: float = 90,
               describe=lambda: "") -> dict:
    """Wait until a server answers through the proxy; fail at once if it stopped starting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spec = hub_api(hub, token, "GET", f"users/{user}").json()["servers"].get(name)
        if spec and spec["ready"]:
            return spec
        if not spec or not spec["pending"]:
            raise AssertionError(f"server {user}/{name} is not starting: {spec} {describe()}")
        time.sleep(0.3)
    raise AssertionError(f"server {user}/{name} not ready in {timeout}s {describe()}")


def stop_server(hub: HubProcess, token: str, user: str = "demo", name: str = "") -> None:
    """Stop a server and wait until the hub forgets it."""
    r = hub_api(hub, token, "DELETE", server_path(user, name))
    assert r.status_code in (202, 204, 404), r.text
    deadline = time.monotonic() + 60
    while name in hub_api(hub, token, "GET", f"users/{user}").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.3)


# -- processes, containers and sessions of a hub, for the fault tests -----------------------------------

def until(what: str, check, timeout: float = 60):
    """Poll ``check()`` every 0.5 s until it returns something true (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s")


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def service_pid(hub: HubProcess) -> int:
    """The pid of the hub's REST service (the hub's child)."""
    found = [p for p in children(hub.proc.pid) if "backendai_hub.service" in cmdline(p)]
    assert found, "the hub's service process"
    return found[0]


def kill_hub(hub: HubProcess) -> None:
    """SIGKILL the hub process: it cleans nothing up. The proxy lives on (the restarted hub finds it);
    the service, which the hub started in a session of its own, follows its parent (PDEATHSIG)."""
    service = service_pid(hub)
    os.kill(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait(10)
    until("the service exits with its hub", lambda: not Path(f"/proc/{service}").exists(), 30)


def containers(hub: HubProcess, name: str, user: str = "demo") -> list:
    """The containers (any state) of ``user``'s server ``name`` on the hub's session network."""
    import docker

    from backendai_hub.spawner.names import label_filters

    return docker.from_env().containers.list(all=True, filters={**label_filters(user, name),
                                                                "network": hub.network})


def live_sessions(hub: HubProcess) -> list[tuple[str, str]]:
    """(server name, status) of the sessions our database holds as starting or running."""
    from sqlalchemy import create_engine, text

    from backendai_hub.db import normalize_url

    engine = create_engine(normalize_url(hub.db_url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT server_name, status FROM sessions WHERE status IN ('starting', 'running')"))]
    finally:
        engine.dispose()
