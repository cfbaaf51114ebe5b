"""Where a spawn's time goes: hub log lines, the engine's container events and the server's own log, per spawn
(the attribution half of benchmarks/spawn.py)."""

from __future__ import annotations

import re
import threading
from datetime import datetime
from pathlib import Path

import requests

from .common import stats


class Side:
    """One hub under test: its public URL, an admin-scoped token, its users and its log."""

    def __init__(self, key: str, label: str):
        self.key, self.label = key, label
        self.url = self.token = ""
        self.log: Path | None = None
        self.users: list[str] = []
        self.options: dict = {}
        self.container_prefix = ""
        self.labelled = False  # our hub: containers found by label (their names are opaque)
        self._local = threading.local()

    @property
    def http(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
            s.headers["Authorization"] = f"token {self.token}"
        return s

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, f"{self.url}/hub/api/{path}", timeout=kw.pop("timeout", 150), **kw)


# -- where the time goes: hub log lines and Docker events, per spawn -----------------------------------

LOG_LINE = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) [^\]]*\] (.*)$")


def log_times(path: Path) -> list[tuple[float, str]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = LOG_LINE.match(line)
        if m:
            out.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(), m.group(2)))
    return out


class DockerEvents:
    """Container create/start events, collected live (the engine keeps only its last 256 events)."""

    def __init__(self):
        import docker

        self.events: list[dict] = []
        self._stream = docker.from_env().events(decode=True, filters={"type": "container",
                                                                      "event": ["create", "start"]})
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        try:
            for e in self._stream:
                attrs = e["Actor"]["Attributes"]
                self.events.append({"t": e["timeNano"] / 1e9, "action": e["Action"], "name": attrs.get("name", ""),
                                    "hub_user": attrs.get(HUB_USER_LABEL, "")})
        except Exception:  # the stream is closed at the end of the run
            pass

    def close(self) -> list[dict]:
        try:
            self._stream.close()
        except Exception:
            pass
        self._thread.join(5)
        return list(self.events)


HUB_USER_LABEL = "ai.backend.hub.user"  # our session containers' names are opaque: found by this label


def container_name(side: Side, user: str) -> str:
    """The container of ``user``'s server on ``side``: by label on ours, by name on plain DockerSpawner."""
    if not side.labelled:
        return f"{side.container_prefix}{user}"
    import docker

    found = docker.from_env().containers.list(all=True, filters={"label": f"{HUB_USER_LABEL}={user}"})
    return found[0].name if found else ""


CONTAINER_MARKS = (("c_first", ""), ("c_hub", "Updating Hub with activity"), ("c_listening", "is running at"))


def container_marks(name: str) -> dict[str, float]:
    """When the server in a running container logged its first line, reached the hub and listened."""
    import docker

    try:
        text = docker.from_env().containers.get(name).logs(timestamps=True).decode(errors="replace")
    except Exception:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        stamp, _, msg = line.partition(" ")
        for key, needle in CONTAINER_MARKS:
            if key not in out and needle in msg:
                try:  # RFC 3339 with nanoseconds: keep microseconds for fromisoformat
                    out[key] = datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
                except ValueError:
                    pass
    return out


def _first_after(lines, t0: float, t1: float, needle: str) -> float | None:
    for t, msg in lines:
        if t0 - 0.002 <= t <= t1 + 0.5 and needle in msg:
            return t
    return None


def stages(side: Side, runs: list[dict], lines, events) -> dict[str, list[float]]:
    """Durations (s) of each stage of each successful spawn, from the hub's log and Docker's events."""
    out: dict[str, list[float]] = {}
    for r in runs:
        if not r.get("ok"):
            continue
        u, t0, t1 = r["user"], r["wall0"], r["wall_ready"]
        mine = [e for e in events if t0 - 0.01 <= e["t"] <= t1
                and (e["hub_user"] == u if side.labelled else e["name"] == f"{side.container_prefix}{u}")]
        name = mine[0]["name"] if mine else f"{side.container_prefix}{u}"
        ev = {e["action"]: e["t"] for e in mine}
        marks = {
            "checking": _first_after(lines, t0, t1, f"{u}: checking the request"),
            "admitted": _first_after(lines, t0, t1, f"{u}: admitted to group"),
            "creating": _first_after(lines, t0, t1, f"{u}: creating the container"),
            "docker_start_call": _first_after(lines, t0, t1, f"'{name}' is gone")
            or _first_after(lines, t0, t1, f"Created container {name} "),
            "created": ev.get("create"),
            "started": ev.get("start"),
            "waiting": _first_after(lines, t0, t1, f"{u}: waiting for the server"),
            "took": _first_after(lines, t0, t1, f"User {u} took "),
            **r.get("container_marks", {}),
        }
        if side.key == "A":
            chain = [("request -> spawner.start", "t0", "checking"),
                     ("  image catalog + tenancy + admission tx", "checking", "admitted"),
                     ("  network/guard check", "admitted", "creating"),
                     ("  -> DockerSpawner.start", "creating", "docker_start_call")]
        else:
            chain = []
        chain += [("request -> DockerSpawner.start", "t0", "docker_start_call"),
                  ("container create", "docker_start_call", "created"),
                  ("container start", "created", "started"),
                  ("started -> hub sees server up", "started", "took")]
        if side.key == "A":
            chain += [("  ip + egress firewall + mark_running", "started", "waiting")]
        chain += [("  start -> server's first log line (imports)", "started", "c_first"),
                  ("  -> server has reached the hub API", "c_first", "c_hub"),
                  ("  -> server listening", "c_hub", "c_listening"),
                  ("  listening -> hub's http check passes", "c_listening", "took")]
        chain += [("hub sees up -> 200 via proxy", "took", "t1")]
        marks["t0"], marks["t1"] = t0, t1
        for label, a, b in chain:
            if marks.get(a) is not None and marks.get(b) is not None:
                out.setdefault(label, []).append(marks[b] - marks[a])
    return out


def stage_rows(per_side: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    rows = {}
    for key, st in per_side.items():
        for label, xs in st.items():
            rows[f"{key} {label}"] = stats([int(x * 1e9) for x in xs], "ms")
    return rows


def metrics_stage(side: Side) -> dict[str, tuple[float, float]]:
    """backendai_hub_spawn_stage_seconds sum and count per stage, from the hub's /hub/metrics."""
    try:
        text = side.http.get(f"{side.url}/hub/metrics", timeout=10).text
    except requests.RequestException:
        return {}
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        m = re.match(r'backendai_hub_spawn_stage_seconds_(sum|count)\{stage="(\w+)"\} ([0-9.e+-]+)', line)
        if m:
            out.setdefault(m.group(2), [0.0, 0.0])[0 if m.group(1) == "sum" else 1] = float(m.group(3))
    return {k: (v[0], v[1]) for k, v in out.items()}


def container_facts(name: str) -> dict:
    """The settings of a running server's container that may change how fast it boots."""
    import docker

    try:
        a = docker.from_env().api.inspect_container(name)
    except Exception as e:
        return {"error": str(e)}
    hc = a["HostConfig"]
    return {"Memory": hc.get("Memory"), "CpuQuota": hc.get("CpuQuota"), "CpusetCpus": hc.get("CpusetCpus"),
            "ReadonlyRootfs": hc.get("ReadonlyRootfs"), "Tmpfs": hc.get("Tmpfs"), "PidsLimit": hc.get("PidsLimit"),
            "seccomp": any(o.startswith("seccomp=") for o in hc.get("SecurityOpt") or []),
            "Runtime": hc.get("Runtime"), "User": a["Config"].get("User")}
