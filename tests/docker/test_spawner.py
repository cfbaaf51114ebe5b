"""Sessions spawned through the real hub on the real engine: policy, jail, network, lifecycle."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
import requests

from backendai_hub.spawner.names import label_filters
from tests.hubproc import (
    hub_api,
    hub_fixture,
    hub_token,
    run_cli,
    server_path,
    stop_server,
    wait_ready,
)

pytestmark = pytest.mark.docker

SMALL = {"resources": {"cpu": 1, "mem": "512m"}}


hub = hub_fixture("spawner", BACKENDAI_HUB_CULL_INTERVAL="1", BACKENDAI_HUB_CULL_WARNING="0")
api = hub_api
stop = stop_server


def container(hub, user="demo", name=""):
    """The container of a user's (default or named) server, found by its labels: its name is opaque."""
    found = docker.from_env().containers.list(filters={**label_filters(user, name), "network": hub.network})
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def tenant_containers(hub, user: str) -> list:
    """The running session containers of a user."""
    return docker.from_env().containers.list(filters={**label_filters(user), "network": hub.network})


def spawn(hub, token, user="demo", name="", options=SMALL):
    return api(hub, token, "POST", server_path(user, name), json=options)


@pytest.fixture
def clean(hub, admin):
    yield
    for user in ("demo", "admin", "manager"):
        for name in list(api(hub, admin, "GET", f"users/{user}").json()["servers"]):
            stop(hub, admin, user, name)


def sh(c, cmd):
    result = c.exec_run(["bash", "-c", cmd], user="1000")
    return result.exit_code, result.output.decode(errors="replace")


def session_rows(hub):
    r = run_cli(hub, "-o", "json", "policy", "list")  # touches the DB through the CLI, proves it is shared
    assert r.returncode == 0
    import sqlite3

    con = sqlite3.connect(hub.state / "backendai_hub.sqlite")
    try:
        return con.execute("select server_name, status, status_info from sessions order by id").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("options, status, message", [
    ({"resources": {"cpu": 100}}, 403, "allows cpu=4, 0 in use, 100 requested"),
    ({"resources": {"rocm.device": 1}}, 403, "unknown resource slot 'rocm.device'"),
    ({"colour": "red"}, 400, "unknown option 'colour'"),
    ({"image": "nope:1"}, 400, "image: 'nope:1' is not a known session image"),
    ({"resources": {"mem": "128m"}}, 400, "below the image's minimum 256m"),
    ({"resources": {"mem": "12X"}}, 400, "'12X' is not an amount"),
    ({"app": "rstudio"}, 400, "app: 'rstudio' is not offered by image"),
    ({"group": "nope"}, 403, "is not a member of group 'nope'"),
])
def test_requests_outside_the_rules_are_refused_with_the_reason(hub, admin, clean, options, status, message):
    r = spawn(hub, admin, options=options)
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    assert "" not in api(hub, admin, "GET", "users/demo").json()["servers"]


def test_a_session_is_jailed_limited_and_isolated(hub, admin, clean):
    r = spawn(hub, admin, options={"resources": {"cpu": 1, "mem": "512m"}, "image": "python:3.11"})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, admin)
    # reachable through the proxy for its owner (here: an admin token)
    assert api(hub, admin, "GET", "../../user/demo/api/status").status_code == 200
    c = container(hub)
    hc = c.attrs["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuQuota"], hc["CpusetCpus"]) == (512 * 2**20, 512 * 2**20, 100000, "0")
    assert hc["ReadonlyRootfs"] and hc["CapDrop"] == ["ALL"] and hc["PidsLimit"] == 512
    assert c.attrs["Config"]["User"] == "1000:1000"
    assert "backendai-hub/notebook:python3.11" in c.image.tags  # the alias resolved to that image
    code, status = sh(c, "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status")
    assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status
    assert sh(c, "nproc")[1].strip() == "1"
    assert sh(c, "unshare -r true")[0] != 0
    assert sh(c, "touch /etc/x")[0] != 0 and sh(c, "touch /opt/x")[0] != 0
    assert sh(c, "touch /home/work/x && touch /tmp/x")[0] == 0
    env = dict(line.split("=", 1) for line in sh(c, "env")[1].splitlines() if "=" in line)
    assert env["BACKENDAI_GROUP"] == "default" and env["BACKENDAI_RESOURCES"] == "cpu=1,mem=512m"
    # the network: the hub only through the proxy's public port; nothing else of the host
    gateway = c.attrs["NetworkSettings"]["Networks"][hub.network]["Gateway"]
    probe = ("import socket,sys\n"
             "def ok(h,p):\n"
             "  s=socket.socket(); s.settimeout(2)\n"
             "  try: s.connect((h,p)); return 'open'\n"
             "  except Exception as e: return type(e).__name__\n"
             "  finally: s.close()\n"
             f"print(ok('{gateway}',{hub.port}), ok('{gateway}',{hub.port + 1}), ok('{gateway}',{hub.port + 2}), "
             f"ok('{gateway}',{hub.port + 3}))\n")
    out = c.exec_run(["python3", "-c", probe], user="1000").output.decode().split()
    assert out[0] == "open", out  # public port (via the guard's DNAT): how the server reaches the hub API
    assert out[1:] != ["open"] * 3 and "open" not in out[1:], out  # proxy API, hub, service: dropped


def test_named_servers_count_and_twenty_simultaneous_spawns_admit_exactly_one(hub, admin, clean):
    # demo's keypair policy allows 2 concurrent sessions
    assert spawn(hub, admin, name="a").status_code in (201, 202)
    wait_ready(hub, admin, name="a")

    def attempt(i):
        return spawn(hub, admin, name=f"race{i}", options={"resources": {"cpu": 1, "mem": "256m"}})

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    admitted = [r for r in results if r.status_code in (201, 202)]
    refused = [r for r in results if r.status_code == 403]
    assert len(admitted) == 1 and len(refused) == 19, ([(r.status_code, r.text[:80]) for r in results], session_rows(hub))
    assert all("allows 2 concurrent sessions, 2 running" in r.json()["message"] for r in refused)
    r = spawn(hub, admin, name="c")
    assert r.status_code == 403 and "allows 2 concurrent sessions, 2 running" in r.json()["message"]
    # the denials are counted for Prometheus, with the level and slot that denied them
    metrics = api(hub, admin, "GET", "../metrics").text
    denied = [line for line in metrics.splitlines()
              if line.startswith('backendai_hub_denials_total{reason="keypair:sessions"}')]
    assert denied and float(denied[0].split()[-1]) >= 20
    assert any(line.startswith("backendai_hub_admissions_total") and float(line.split()[-1]) >= 2
               for line in metrics.splitlines())
    assert "backendai_hub_spawn_stage_seconds_bucket" in metrics


def test_user_b_cannot_reach_user_a_server(hub, admin, clean):
    assert spawn(hub, admin).status_code in (201, 202)
    wait_ready(hub, admin)
    other = hub_token(hub, "manager", hub.credentials["manager"]["password"])
    r = requests.get(f"{hub.url}/user/demo/api/status", headers={"Authorization": f"token {other}"},
                     timeout=20, allow_redirects=False)
    assert r.status_code in (302, 403), r.status_code
    if r.status_code == 302:
        assert "/user/demo/" not in r.headers["Location"] or "oauth" in r.headers["Location"]
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.ioloop import IOLoop
    from tornado.websocket import websocket_connect

    async def ws():
        req = HTTPRequest(f"ws://127.0.0.1:{hub.port}/user/demo/api/events/subscribe",
                          headers={"Authorization": f"token {other}"})
        try:
            conn = await websocket_connect(req)
            conn.close()
            return "open"
        except HTTPClientError as e:
            return e.code

    assert IOLoop.current().run_sync(ws) in (302, 403)


# Runs inside a session: resolve each name, and each address back to its name (Docker's embedded DNS).
RESOLVE = r"""
import json, socket, sys
names, addresses = sys.argv[1].split(","), sys.argv[2].split(",")
out = {}
for n in names:
    try: out[n] = socket.gethostbyname(n)
    except OSError as e: out[n] = None
for a in addresses:
    try: out[a] = socket.gethostbyaddr(a)[0]
    except OSError as e: out[a] = None
print(json.dumps(out))
"""


def test_sessions_cannot_resolve_other_tenants_sessions(hub, admin, clean):
    assert spawn(hub, admin).status_code in (201, 202)
    assert spawn(hub, admin, user="manager", name="thesis").status_code in (201, 202)
    wait_ready(hub, admin)
    wait_ready(hub, admin, user="manager", name="thesis")
    [mine] = tenant_containers(hub, "demo")
    [theirs] = tenant_containers(hub, "manager")
    their_ip = theirs.attrs["NetworkSettings"]["Networks"][hub.network]["IPAddress"]
    # what a tenant would guess: the other user's and server's names, as DockerSpawner would derive them
    guesses = ["jupyter-manager--thesis", f"jupyter-manager--thesis.{hub.network}", "jupyter-manager",
               "manager", "thesis"]
    code, out = mine.exec_run(["python3", "-c", RESOLVE, ",".join(guesses), their_ip], user="1000")
    assert code == 0, out
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert {g: seen[g] for g in guesses} == {g: None for g in guesses}
    # the address's name, if the engine answers one, is no tenant's
    assert not seen[their_ip] or ("manager" not in seen[their_ip] and "thesis" not in seen[their_ip]), seen
    assert "manager" not in theirs.name and "thesis" not in theirs.name


def test_user_demo_server_x_and_user_demo_x_keep_their_own_labs(hub, admin, clean, tmp_path):
    # JupyterHub's default gives both servers one OAuth client: 'jupyterhub-user-demo-x'
    fixture = tmp_path / "demo-x.json"
    fixture.write_text(json.dumps({
        "users": [{"username": "demo-x", "email": "demo-x@example.com", "domain": "default", "groups": ["default"]}],
        "keypairs": [{"user": "demo-x", "resource_policy": "default"}]}))
    assert run_cli(hub, "fixture", "populate", str(fixture)).returncode == 0
    assert api(hub, admin, "POST", "users/demo-x").status_code in (201, 409)
    try:
        assert spawn(hub, admin, name="x").status_code in (201, 202)
        wait_ready(hub, admin, name="x")
        r = spawn(hub, admin, user="demo-x")
        assert r.status_code in (201, 202), r.text  # was a 500, rewriting demo/x's redirect
        wait_ready(hub, admin, user="demo-x")
        # demo's lab, through its OAuth sign-in (a 400 when the redirect pointed at demo-x's server)
        s, _ = hub.login("demo", hub.credentials["demo"]["password"])
        lab = s.get(f"{hub.url}/user/demo/x/lab", timeout=60)
        assert lab.status_code == 200 and lab.url.endswith("/user/demo/x/lab"), (lab.status_code, lab.url)
        assert s.get(f"{hub.url}/user/demo/x/api/status", timeout=60).status_code == 200  # its cookie works
        assert container(hub, name="x").name != container(hub, "demo-x").name
    finally:
        stop(hub, admin, "demo-x")


def test_progress_events_name_the_stages(hub, admin, clean):
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(spawn, hub, admin, name="p")
        deadline = time.monotonic() + 30
        while "p" not in api(hub, admin, "GET", "users/demo").json()["servers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        # follow the event stream of the spawn in progress, as the hub's progress page does
        text = api(hub, admin, "GET", "users/demo/servers/p/progress", timeout=60).text
        assert started.result().status_code in (201, 202)
    assert "checking the request against your policies" in text
    assert "admitted to group 'default': cpu=1,mem=512m" in text
    assert "creating the container" in text


def test_sessions_survive_a_hub_restart_and_dead_containers_are_cleaned_up(hub, admin, clean):
    assert spawn(hub, admin, name="keep").status_code in (201, 202)
    assert spawn(hub, admin, name="die").status_code in (201, 202)
    wait_ready(hub, admin, name="keep")
    wait_ready(hub, admin, name="die")
    hub.stop(keep_sessions=True)
    container(hub, name="die").kill()
    hub.start()
    # the surviving session is still routed; the killed one is gone, with its slots freed
    assert api(hub, admin, "GET", "../../user/demo/keep/api/status").status_code == 200
    servers = api(hub, admin, "GET", "users/demo").json()["servers"]
    assert "die" not in servers or not servers["die"]["ready"]
    rows = dict((name, (status, info)) for name, status, info in session_rows(hub))
    assert rows["keep"][0] == "running"
    assert rows["die"][0] == "terminated"


def test_failed_start_frees_what_it_reserved(hub, admin, clean):
    # an image whose server exits at once: the spawn fails and nothing stays reserved
    client = docker.from_env()
    base = client.containers.create("backendai-hub/notebook:latest", command=["true"])
    try:
        base.commit(repository="backendai-hub/broken", tag="latest", changes=['CMD ["false"]'])
    finally:
        base.remove()
    try:
        r = spawn(hub, admin, name="bad", options={"image": "backendai-hub/broken", **SMALL})
        deadline = time.monotonic() + 90
        rows = []
        while time.monotonic() < deadline:
            rows = [row for row in session_rows(hub) if row[0] == "bad"]
            if rows and rows[-1][1] == "terminated":
                break
            time.sleep(1)
        assert rows and rows[-1][1] == "terminated", (r.status_code, r.text, rows)
        assert "bad" not in api(hub, admin, "GET", "users/demo").json()["servers"] or \
            not api(hub, admin, "GET", "users/demo").json()["servers"]["bad"]["ready"]
    finally:
        client.images.remove("backendai-hub/broken:latest", force=True)


def test_idle_sessions_are_stopped_by_the_policy(hub, admin, clean):
    r = run_cli(hub, "policy", "create", "brief", "--idle-timeout", "3")
    assert r.returncode == 0, r.stderr
    issued = json.loads(run_cli(hub, "-o", "json", "keypair", "issue", "manager", "--policy", "brief").stdout)
    # browser sessions are charged to the user's main keypair, which an admin chooses
    r = run_cli(hub, "user", "update", "manager", "--main-keypair", issued["access_key"])
    assert r.returncode == 0, r.stderr
    assert spawn(hub, admin, user="manager").status_code in (201, 202)
    wait_ready(hub, admin, user="manager")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "" in api(hub, admin, "GET", "users/manager").json()["servers"]:
        time.sleep(1)
    assert "" not in api(hub, admin, "GET", "users/manager").json()["servers"]
    assert any(status == "terminated" and "idle for more than 3 s" in info for _, status, info in session_rows(hub))
