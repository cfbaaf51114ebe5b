"""Spawn-to-ready through the proxy: backendai-hub's embedded config against plain JupyterHub + DockerSpawner."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

from .common import REPO, print_ratios, print_table, ratio, stats

DESCRIPTION = ("spawn-to-ready through the proxy (sequential x10, burst of 20): backendai-hub's embedded "
               "config against plain JupyterHub + DockerSpawner, same image, 1 CPU / 256m")

IMAGE = "backendai-hub/notebook:latest"
OPTIONS_A = {"resources": {"cpu": 1, "mem": "256m"}}  # the plain side gets the same limits from its config
SEQUENTIAL, BURST = 10, 20
READY_TIMEOUT = 240.0  # seconds a spawn may take before it counts as a failure
HUB_POLL, PROXY_POLL, BURST_POLL = 0.1, 0.05, 0.25


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


# -- one spawn: POST, wait for the hub to call it ready, then for a 200 through the proxy --------------

def _server(side: Side, user: str) -> dict | None:
    return side.api("GET", f"users/{user}").json().get("servers", {}).get("")


def _through_proxy(side: Side, user: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            r = side.http.get(f"{side.url}/user/{user}/api/status", timeout=10, allow_redirects=False)
            if r.status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(PROXY_POLL)
    return False


def spawn(side: Side, user: str, *, ready_event: threading.Event | None = None, state: dict | None = None,
          start_gate: threading.Barrier | None = None, on_posted=None) -> dict:
    """Request a server for ``user`` and wait until it answers through the proxy; times in seconds.

    Alone, it polls the user's model; in a burst, ``ready_event``/``state`` come from the shared poller
    (one list request for all users instead of one per user)."""
    if start_gate is not None:
        start_gate.wait()
    out = {"user": user, "wall0": time.time(), "ok": False, "error": None}
    t0 = time.perf_counter()
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        r = side.api("POST", f"users/{user}/server", json=side.options)
        out["post_status"], out["post_s"] = r.status_code, time.perf_counter() - t0
        if r.status_code not in (201, 202):
            out["error"] = f"POST {r.status_code}: {r.text[:200]}"
            return out
        if r.status_code == 202:
            if on_posted is not None:
                on_posted(user)
            if ready_event is not None:
                if not ready_event.wait(READY_TIMEOUT) or state.get(user) != "ready":
                    out["error"] = f"not ready: {state.get(user)}"
                    return out
            else:
                while True:
                    spec = _server(side, user)
                    if spec and spec.get("ready"):
                        break
                    if not spec or not spec.get("pending") or time.monotonic() > deadline:
                        out["error"] = f"not starting: {spec}"
                        return out
                    time.sleep(HUB_POLL)
        if not _through_proxy(side, user, deadline):
            out["error"] = "no 200 through the proxy"
            return out
        out["ready_s"] = time.perf_counter() - t0
        out["wall_ready"] = out["wall0"] + out["ready_s"]
        out["ok"] = True
    except Exception as e:  # a failure of this spawn, counted; the others go on
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def stop(side: Side, user: str, timeout: float = 120) -> float:
    """Stop the user's server and wait until the hub has forgotten it; seconds taken."""
    t0 = time.perf_counter()
    r = side.api("DELETE", f"users/{user}/server")
    if r.status_code not in (202, 204, 400, 404):
        raise RuntimeError(f"{side.label}: DELETE {user}: {r.status_code} {r.text[:200]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _server(side, user) is None:
            return time.perf_counter() - t0
        time.sleep(HUB_POLL)
    raise RuntimeError(f"{side.label}: {user}'s server did not stop in {timeout:.0f}s")


def burst(side: Side, users: list[str]) -> dict:
    """All ``users`` request a server at once; per-user times from the common start, and the total."""
    events = {u: threading.Event() for u in users}
    state: dict[str, str] = {}
    posted: set[str] = set()
    done = threading.Event()

    def poller():
        while not done.is_set():
            try:
                listing = side.api("GET", "users", params={"limit": 500}).json()
                models = listing["items"] if isinstance(listing, dict) else listing
                for m in models:
                    u = m["name"]
                    if u not in events or events[u].is_set():
                        continue
                    spec = (m.get("servers") or {}).get("")
                    if spec and spec.get("ready"):
                        state[u] = "ready"
                        events[u].set()
                    elif u in posted and (not spec or not spec.get("pending")):
                        state[u] = f"not starting: {spec}"
                        events[u].set()
            except (requests.RequestException, ValueError, KeyError):
                pass
            done.wait(BURST_POLL)

    gate = threading.Barrier(len(users) + 1)

    def one(u):
        return spawn(side, u, ready_event=events[u], state=state, start_gate=gate, on_posted=posted.add)

    watcher = threading.Thread(target=poller, daemon=True)
    with ThreadPoolExecutor(len(users)) as pool:
        futures = [pool.submit(one, u) for u in users]
        gate.wait()
        t0 = time.perf_counter()
        watcher.start()
        results = [f.result() for f in futures]
    total = time.perf_counter() - t0
    done.set()
    watcher.join(5)
    failures = [r for r in results if not r["ok"]]
    return {"results": results, "total_s": total if not failures else float("nan"),
            "total_incl_failures_s": total, "failures": len(failures),
            "errors": [f"{r['user']}: {r['error']}" for r in failures][:5]}


def stop_all(side: Side, users: list[str]) -> list[float]:
    with ThreadPoolExecutor(len(users)) as pool:
        return list(pool.map(lambda u: stop(side, u), users))


# -- where the time goes: hub log lines and Docker events, per spawn -----------------------------------

LOG_LINE = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) [^\]]*\] (.*)$")


def _log_times(path: Path) -> list[tuple[float, str]]:
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


def container_name(side: "Side", user: str) -> str:
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


def _stage_rows(per_side: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    rows = {}
    for key, st in per_side.items():
        for label, xs in st.items():
            rows[f"{key} {label}"] = stats([int(x * 1e9) for x in xs], "ms")
    return rows


def _metrics_stage(side: Side) -> dict[str, tuple[float, float]]:
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


def _container_facts(name: str) -> dict:
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


# -- the two hubs ---------------------------------------------------------------------------------------

def _fixture(users: list[str]) -> dict:
    return {
        "resource_policies": {"keypair": [{"name": "bench"}]},  # no slots, no session or lifetime limits
        "domains": [{"name": "bench", "description": "spawn benchmark: no limits"}],
        "groups": [{"name": "bench", "domain": "bench"}],
        "users": [{"username": u, "email": f"{u}@bench.invalid", "domain": "bench", "groups": ["bench"]}
                  for u in users],
        "keypairs": [{"user": u, "resource_policy": "bench"} for u in users],
    }


def start_a(state: Path, side: Side, users: list[str]):
    """backendai-hub's embedded config (tests/hubproc.HubProcess), with the bench tenancy and users."""
    sys.path.insert(0, str(REPO))
    from tests.hubproc import HubProcess, hub_token, run_cli

    hub = HubProcess(state, extra_env={"BACKENDAI_HUB_HOST_CAPACITY": "cpu=64,mem=64g",
                                       "BACKENDAI_HUB_CULL_INTERVAL": "3600"})
    hub.start(timeout=90)
    fixture = state / "bench-fixture.json"
    fixture.write_text(json.dumps(_fixture(users)))
    r = run_cli(hub, "fixture", "populate", str(fixture))
    if r.returncode != 0:
        raise RuntimeError(f"fixture populate failed: {r.stderr or r.stdout}")
    side.url, side.log = hub.url, hub.log
    side.token = hub_token(hub, "admin", hub.credentials["admin"]["password"], note="bench")
    side.options, side.labelled = OPTIONS_A, True
    return hub


class PlainHub:
    """Plain JupyterHub + DockerSpawner from benchmarks/plain_dockerspawner_config.py."""

    def __init__(self, state: Path):
        from tests.hubproc import free_port_block

        self.state = state
        self.port = free_port_block(3)
        self.url = f"http://127.0.0.1:{self.port}"
        self.network = f"bench-plain-{secrets.token_hex(4)}"
        self.token = secrets.token_hex(32)
        self.log = state / "hub.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        import docker

        self.state.mkdir(parents=True, exist_ok=True)
        docker.from_env().networks.create(self.network, driver="bridge", labels={"backendai-hub.bench": "1"})
        env = {**os.environ, "BENCH_PLAIN_STATE": str(self.state), "BENCH_PLAIN_PORT": str(self.port),
               "BENCH_PLAIN_NETWORK": self.network, "BENCH_PLAIN_TOKEN": self.token, "BENCH_PLAIN_IMAGE": IMAGE}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("jupyterhub")), "-f",
                 str(REPO / "benchmarks" / "plain_dockerspawner_config.py")],
                cwd=self.state, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        from tests.hubproc import wait_for_hub

        wait_for_hub(self.url, self.proc, self.log, timeout, what="plain hub")

    def stop(self) -> None:
        import docker

        from tests.hubproc import stop_group

        stop_group(self.proc, 30)
        client = docker.from_env()
        for c in client.containers.list(all=True, filters={"network": self.network}):
            c.remove(force=True)
        for n in client.networks.list(names=[self.network]):
            if n.name == self.network:
                n.remove()


def _create_hub_users(side: Side, users: list[str]) -> None:
    r = side.api("POST", "users", json={"usernames": users})
    if r.status_code not in (201, 409):
        raise RuntimeError(f"{side.label}: creating hub users: {r.status_code} {r.text[:300]}")


def _preflight() -> None:
    import docker

    client = docker.from_env()
    client.ping()
    client.images.get(IMAGE)  # raises ImageNotFound: build it first (make images)
    if not (REPO / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        raise RuntimeError("configurable-http-proxy is missing: run `make node` (npm ci) first")


# -- the benchmark ----------------------------------------------------------------------------------------

def _s(xs: list[float]) -> dict:
    return stats([int(x * 1e9) for x in xs], "s")


def run(*, quick: bool) -> dict:
    _preflight()
    n_seq = 2 if quick else SEQUENTIAL
    n_burst = 4 if quick else BURST
    tok = secrets.token_hex(2)
    users = {k: [f"bs{k.lower()}{tok}{i:02d}" for i in range(n_burst + 1)] for k in "AB"}
    seq_user = {k: users[k][-1] for k in "AB"}
    burst_users = {k: users[k][:-1] for k in "AB"}
    A, B = Side("A", "backendai-hub"), Side("B", "plain DockerSpawner")
    sides = {"A": A, "B": B}
    work = Path(tempfile.mkdtemp(prefix="bench-spawn-"))
    hub_a = plain = None
    docker_events = DockerEvents()
    try:
        hub_a = start_a(work / "a", A, users["A"])
        plain = PlainHub(work / "b")
        plain.start()
        B.url, B.token, B.log, B.container_prefix = plain.url, plain.token, plain.log, "bench-plain-"
        for k, side in sides.items():
            _create_hub_users(side, users[k])

        print(f"hubs up: A {A.url}, B {B.url}; warming up (one spawn each)", flush=True)
        warm = {}
        for k, side in sides.items():
            warm[k] = spawn(side, seq_user[k])
            if not warm[k]["ok"]:
                raise RuntimeError(f"{side.label}: warm-up spawn failed: {warm[k]['error']}")
            stop(side, seq_user[k])
            print(f"  {k} warm-up: {warm[k]['ready_s']:.2f} s", flush=True)

        # sequential, interleaved: A B, B A, A B, ...
        seq = {"A": [], "B": []}
        stops = {"A": [], "B": []}
        containers: dict[str, dict] = {}
        m0 = _metrics_stage(A)
        for i in range(n_seq):
            for k in ("AB" if i % 2 == 0 else "BA"):
                res = spawn(sides[k], seq_user[k])
                seq[k].append(res)
                if res["ok"]:
                    res["container_marks"] = container_marks(container_name(sides[k], seq_user[k]))
                if res["ok"] and k not in containers:
                    containers[k] = _container_facts(container_name(sides[k], seq_user[k]))
                if res["ok"]:
                    stops[k].append(stop(sides[k], seq_user[k]))
                else:
                    try:
                        stop(sides[k], seq_user[k])
                    except Exception:
                        pass
            print(f"  sequential {i + 1}/{n_seq}: " + ", ".join(
                f"{k} {seq[k][-1].get('ready_s', float('nan')):.2f} s" for k in "AB"), flush=True)
        m1 = _metrics_stage(A)

        # burst: each side alone on the machine, A first then B, with a pause in between
        bursts = {}
        for k in "AB":
            bursts[k] = burst(sides[k], burst_users[k])
            b = bursts[k]
            print(f"  burst {k}: {n_burst} users, all answered in {b['total_incl_failures_s']:.2f} s, "
                  f"failures {b['failures']}", flush=True)
            for res in b["results"]:
                if res["ok"]:
                    res["container_marks"] = container_marks(container_name(sides[k], res["user"]))
            stop_all(sides[k], burst_users[k])
            time.sleep(2)
        m2 = _metrics_stage(A)

        # attribution from the logs and the engine's events
        events = docker_events.close()
        lines = {k: _log_times(sides[k].log) for k in "AB"}
        seq_stages = {k: stages(sides[k], seq[k], lines[k], events) for k in "AB"}
        burst_stages = {k: stages(sides[k], bursts[k]["results"], lines[k], events) for k in "AB"}
    finally:
        docker_events.close()
        errors = []
        for thing in (plain, hub_a):
            if thing is None:
                continue
            try:
                thing.stop()
            except Exception as e:  # go on cleaning up the other
                errors.append(f"{type(thing).__name__}: {e}")
        if errors:
            print(f"cleanup problems: {errors}", file=sys.stderr)
        # keep the two hub logs for reading after the run; drop the rest (SQLite, secrets)
        logs_dir = REPO / ".state" / "bench" / "spawn-logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        for k, sub in (("a", "a"), ("b", "b")):
            src = work / sub / "hub.log"
            if src.exists():
                shutil.copy(src, logs_dir / f"hub-{k}.log")
        shutil.rmtree(work, ignore_errors=True)

    # -- report ---------------------------------------------------------------------------------------
    seq_stats = {k: _s([r["ready_s"] for r in seq[k] if r["ok"]]) for k in "AB"}
    seq_fail = {k: sum(not r["ok"] for r in seq[k]) for k in "AB"}
    stop_stats = {k: _s(stops[k]) for k in "AB"}
    burst_user = {k: _s([r["ready_s"] for r in bursts[k]["results"] if r["ok"]]) for k in "AB"}
    rows = {f"{sides[k].label}: spawn -> 200 via proxy": seq_stats[k] for k in "AB"}
    rows.update({f"{sides[k].label}: stop": stop_stats[k] for k in "AB"})
    print_table(f"Sequential x{n_seq} (interleaved, after one warm-up each), seconds", rows,
                columns=("n", "p50", "p95", "mean", "max"),
                extra={f"{sides[k].label}: spawn -> 200 via proxy": {"failures": str(seq_fail[k])} for k in "AB"})
    print_table(f"Burst of {n_burst} users at once: per-user time to 200 via proxy, seconds",
                {f"{sides[k].label}": burst_user[k] for k in "AB"}, columns=("n", "p50", "p95", "mean", "max"),
                extra={sides[k].label: {"total (s)": f"{bursts[k]['total_incl_failures_s']:.2f}",
                                        "failures": str(bursts[k]["failures"])} for k in "AB"})
    r_seq = ratio(seq_stats["A"].get("p50", float("nan")), seq_stats["B"].get("p50", float("nan")))
    r_burst = ratio(bursts["A"]["total_s"], bursts["B"]["total_s"])
    ratios = {"sequential p50 (A/B)": r_seq, "sequential p95 (A/B)":
              ratio(seq_stats["A"].get("p95", float("nan")), seq_stats["B"].get("p95", float("nan"))),
              "burst total (A/B)": r_burst,
              "burst per-user p50 (A/B)": ratio(burst_user["A"].get("p50", float("nan")),
                                                burst_user["B"].get("p50", float("nan")))}
    print_ratios("Ratios, backendai-hub / plain DockerSpawner (goal: <= 1.00)", ratios)
    failures = sum(seq_fail.values()) + bursts["A"]["failures"] + bursts["B"]["failures"]
    goal_met = r_seq <= 1.0 and r_burst <= 1.0 and failures == 0
    print(f"\nGoal (ratios <= 1.0, zero failures): {'met' if goal_met else 'NOT met'} "
          f"(sequential p50 {r_seq:.2f}x, burst total {r_burst:.2f}x, failures {failures})")
    for k in "AB":
        if bursts[k]["errors"]:
            print(f"  {sides[k].label} burst errors: {bursts[k]['errors']}")

    print_table("Where the time goes, sequential (p50 per stage; from hub logs and Docker events)",
                _stage_rows(seq_stages), columns=("n", "p50", "p95", "mean"))
    print_table("Where the time goes, burst", _stage_rows(burst_stages), columns=("n", "p50", "p95", "max"))
    metr = {}
    for label, (a, b) in (("sequential", (m0, m1)), ("burst", (m1, m2))):
        for stage, (s1, c1) in b.items():
            s0, c0 = a.get(stage, (0.0, 0.0))
            if c1 > c0:
                metr[f"{label} {stage}"] = {"mean_ms": 1000 * (s1 - s0) / (c1 - c0), "n": c1 - c0}
    if metr:
        print("\nbackendai-hub's own stage metrics (/hub/metrics, mean per spawn):")
        for label, v in metr.items():
            print(f"  {label:24s} {v['mean_ms']:9.1f} ms  (n={v['n']:.0f})")
    for k in "AB":
        print(f"{sides[k].label} container: {containers.get(k)}")
    print(f"\nhub logs kept in {REPO / '.state' / 'bench' / 'spawn-logs'}")

    return {
        "parameters": {"image": IMAGE, "cpu": 1, "mem": "256m", "sequential": n_seq, "burst": n_burst,
                       "hub_poll_s": HUB_POLL, "burst_poll_s": BURST_POLL, "proxy_poll_s": PROXY_POLL,
                       "ready_timeout_s": READY_TIMEOUT, "order": "warm-up A,B; sequential interleaved; burst A then B"},
        "warmup_s": {k: warm[k]["ready_s"] for k in "AB"},
        "sequential": {k: seq_stats[k] for k in "AB"},
        "sequential_failures": seq_fail,
        "stop": {k: stop_stats[k] for k in "AB"},
        "burst": {k: {"per_user": burst_user[k], "total_s": bursts[k]["total_incl_failures_s"],
                      "failures": bursts[k]["failures"], "errors": bursts[k]["errors"]} for k in "AB"},
        "stages_ms": {"sequential": _stage_rows(seq_stages), "burst": _stage_rows(burst_stages)},
        "backendai_stage_metrics": metr,
        "containers": containers,
        "ratios": ratios,
        "goal_met": goal_met,
    }
