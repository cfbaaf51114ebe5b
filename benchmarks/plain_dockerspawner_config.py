"""The baseline of `benchmarks/spawn.py`: plain JupyterHub + dockerspawner.DockerSpawner, nothing of ours.

Same image and limits as the backendai-hub side (256m memory, 1 CPU), a bridge network of its own,
configurable-http-proxy from node_modules on 127.0.0.1, DummyAuthenticator, and one service token
with admin scopes for the benchmark's client. Settings come from the environment:

  BENCH_PLAIN_STATE    state dir (SQLite, cookie secret, pid files); default .state/bench/plain
  BENCH_PLAIN_PORT     public port; the proxy API uses PORT+1 and the hub PORT+2 (default 8100)
  BENCH_PLAIN_NETWORK  Docker network for the servers (created here if missing; default bench-plain)
  BENCH_PLAIN_TOKEN    API token of the 'bench' service (required)
  BENCH_PLAIN_IMAGE    default backendai-hub/notebook:latest
"""

import os
from pathlib import Path

import docker

c = get_config()  # noqa: F821 - provided by JupyterHub

here = Path(__file__).resolve().parent.parent
state = Path(os.environ.get("BENCH_PLAIN_STATE", here / ".state" / "bench" / "plain")).resolve()
state.mkdir(parents=True, exist_ok=True)
port = int(os.environ.get("BENCH_PLAIN_PORT", "8100"))
network = os.environ.get("BENCH_PLAIN_NETWORK", "bench-plain")

# The servers' network; the hub listens on its gateway so that containers reach the hub API directly,
# the usual DockerSpawner setup (the benchmark creates and removes the network; this is a fallback).
client = docker.from_env()
found = client.networks.list(names=[network])
net = next((n for n in found if n.name == network), None)
if net is None:
    net = client.networks.create(network, driver="bridge", labels={"backendai-hub.bench": "1"})
net.reload()
gateway = net.attrs["IPAM"]["Config"][0]["Gateway"]

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = f"http://{gateway}:{port + 2}"
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
chp = here / "node_modules" / ".bin" / "configurable-http-proxy"
if chp.exists():
    c.ConfigurableHTTPProxy.command = [str(chp)]

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["BENCH_PLAIN_TOKEN"]}]
c.JupyterHub.load_roles = [{
    "name": "bench",
    "scopes": ["admin:users", "admin:servers", "access:servers", "list:users", "read:users"],
    "services": ["bench"],
}]

c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = os.environ.get("BENCH_PLAIN_IMAGE", "backendai-hub/notebook:latest")
c.DockerSpawner.pull_policy = "never"  # as backendai-hub: the image is local, no registry
c.DockerSpawner.network_name = network
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.name_template = "bench-plain-{username}"
c.DockerSpawner.mem_limit = 256 * 1024 * 1024  # 256m; this trait wants bytes
c.DockerSpawner.cpu_limit = 1.0
c.Spawner.start_timeout = 120  # as the embedded config
c.Spawner.http_timeout = 120
