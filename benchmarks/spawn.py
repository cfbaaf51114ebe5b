"""Spawn-to-ready through the proxy: backendai-hub's embedded config against plain JupyterHub + DockerSpawner."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from .common import REPO, print_ratios, print_table, ratio, stats
from .spawn_stages import (DockerEvents, Side, container_facts, container_marks, container_name, log_times,
                           metrics_stage, stage_rows, stages)

DESCRIPTION = ("spawn-to-ready through the proxy (sequential x10, burst of 20): backendai-hub's embedded "
               "config against plain JupyterHub + DockerSpawner, same image, 1 CPU / 256m")

IMAGE = "backendai-hub/notebook:latest"
OPTIONS_A = {"resources": {"cpu": 1, "mem": "256m"}}  # the plain side gets the same limits from its config
SEQUENTIAL, BURST = 10, 20
READY_TIMEOUT = 240.0  # seconds a spawn may take before it counts as a failure
HUB_POLL, PROXY_POLL, BURST_POLL = 0.1, 0.05, 0.25


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


def run(*, quick: bool, sequential: int | None = None, burst_size: int | None = None) -> dict:
    """``sequential`` rounds (default 10; ``$BENCH_SPAWN_SEQUENTIAL``) and a burst of ``burst_size`` users
    (default 20; ``$BENCH_SPAWN_BURST``; 0 skips the burst)."""
    _preflight()
    n_seq = sequential or int(os.environ.get("BENCH_SPAWN_SEQUENTIAL", 2 if quick else SEQUENTIAL))
    n_burst = burst_size if burst_size is not None else int(os.environ.get("BENCH_SPAWN_BURST", 4 if quick else BURST))
    tok = secrets.token_hex(2)
    users = {k: [f"bs{k.lower()}{tok}{i:03d}" for i in range(n_burst + 1)] for k in "AB"}
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
        m0 = metrics_stage(A)
        for i in range(n_seq):
            for k in ("AB" if i % 2 == 0 else "BA"):
                res = spawn(sides[k], seq_user[k])
                seq[k].append(res)
                if res["ok"]:
                    res["container_marks"] = container_marks(container_name(sides[k], seq_user[k]))
                if res["ok"] and k not in containers:
                    containers[k] = container_facts(container_name(sides[k], seq_user[k]))
                if res["ok"]:
                    stops[k].append(stop(sides[k], seq_user[k]))
                else:
                    try:
                        stop(sides[k], seq_user[k])
                    except Exception:
                        pass
            print(f"  sequential {i + 1}/{n_seq}: " + ", ".join(
                f"{k} {seq[k][-1].get('ready_s', float('nan')):.2f} s" for k in "AB"), flush=True)
        m1 = metrics_stage(A)

        # burst: each side alone on the machine, A first then B, with a pause in between
        bursts = {k: {"results": [], "failures": 0, "errors": [], "total_s": float("nan"),
                      "total_incl_failures_s": float("nan")} for k in "AB"}
        for k in ("AB" if n_burst else ""):
            bursts[k] = burst(sides[k], burst_users[k])
            b = bursts[k]
            print(f"  burst {k}: {n_burst} users, all answered in {b['total_incl_failures_s']:.2f} s, "
                  f"failures {b['failures']}", flush=True)
            for res in b["results"]:
                if res["ok"]:
                    res["container_marks"] = container_marks(container_name(sides[k], res["user"]))
            stop_all(sides[k], burst_users[k])
            time.sleep(2)
        m2 = metrics_stage(A)

        # attribution from the logs and the engine's events
        events = docker_events.close()
        lines = {k: log_times(sides[k].log) for k in "AB"}
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
                stage_rows(seq_stages), columns=("n", "p50", "p95", "mean"))
    print_table("Where the time goes, burst", stage_rows(burst_stages), columns=("n", "p50", "p95", "max"))
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
        "stages_ms": {"sequential": stage_rows(seq_stages), "burst": stage_rows(burst_stages)},
        "backendai_stage_metrics": metr,
        "containers": containers,
        "ratios": ratios,
        "goal_met": goal_met,
    }


if __name__ == "__main__":
    import argparse

    from .common import write_result

    p = argparse.ArgumentParser(prog="python -m benchmarks.spawn", description=DESCRIPTION)
    p.add_argument("--sequential", type=int, help=f"sequential rounds (default {SEQUENTIAL})")
    p.add_argument("--burst", type=int, help=f"users in the burst (default {BURST}; 0: no burst)")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    print(write_result("spawn", run(quick=a.quick, sequential=a.sequential, burst_size=a.burst)))
