"""The embedded default: `make demo` runs JupyterHub with backendai-hub on this machine.

SQLite for both databases, the local Docker engine, configurable-http-proxy from node_modules,
BackendAIAuthenticator and BackendAISpawner, the example tenancy, and generated credentials.
Everything it writes lives under $BACKENDAI_HUB_STATE (default: .demo/ beside this file).
"""

import os
from pathlib import Path

import docker

from backendai_hub.accelerators.mock import mock_devices
from backendai_hub.db import Database
from backendai_hub.demo import banner, bootstrap
from backendai_hub.hub_templates import template_paths
from backendai_hub.scopes import CUSTOM_SCOPES
from backendai_hub.service.server import hub_service, hub_service_role
from backendai_hub.spawner.network import ensure_session_network

c = get_config()  # noqa: F821 - provided by JupyterHub

here = Path(__file__).resolve().parent
state = Path(os.environ.get("BACKENDAI_HUB_STATE", here / ".demo")).resolve()
state.mkdir(parents=True, exist_ok=True)
port = int(os.environ.get("BACKENDAI_HUB_PORT", "8000"))
network = os.environ.get("BACKENDAI_HUB_NETWORK", "backendai-hub")

# -- the hub itself ------------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
# land on the home page after sign-in: a session is started deliberately, with its options
c.JupyterHub.default_url = "/hub/home"
# our page overrides, each extending JupyterHub's own (reachable as templates/<name>): page.html links the
# self-service page (keys, sessions, folders) from the navigation bar, home.html links each session's app
# and has the web shell's buttons
c.JupyterHub.template_paths = template_paths()
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
chp = here / "node_modules" / ".bin" / "configurable-http-proxy"
if chp.exists():
    # idle keep-alive connections live 75 s (as nginx's default; Node's own is 5 s): a client reusing a
    # pooled connection the proxy closed that very moment loses its request (aiohttp keeps them 15 s,
    # the load test saw one such PATCH in 57,000 requests)
    c.ConfigurableHTTPProxy.command = [str(chp), "--keep-alive-timeout", "75000"]

# -- our database ----------------------------------------------------------------------------------
c.Database.url = os.environ.get("BACKENDAI_HUB_DB_URL", f"sqlite:///{state / 'backendai_hub.sqlite'}")
c.Database.crypt_key_file = str(state / "backendai_hub.key")

# -- storage for vfolders, and mock GPUs (no GPU here; on an NVIDIA host the cuda plugin finds real ones)
c.StorageHosts.hosts = {"local": str(state / "vfolders")}
c.StorageHosts.quota_backend = "loopback" if os.geteuid() == 0 else "none"
mock_gpus = int(os.environ.get("BACKENDAI_HUB_MOCK_GPUS", "2"))  # 0 turns the mock GPUs off
c.MockPlugin.devices = mock_devices(mock_gpus)

# -- the REST service at /services/backendai/ (admin API, Backend.AI-compatible routes) -------------
c.JupyterHub.custom_scopes = CUSTOM_SCOPES
c.BackendAIService.cull_interval = float(os.environ.get("BACKENDAI_HUB_CULL_INTERVAL", "60"))
c.BackendAIService.usage_interval = float(os.environ.get("BACKENDAI_HUB_USAGE_INTERVAL", "60"))
c.BackendAIService.cull_warning = float(os.environ.get("BACKENDAI_HUB_CULL_WARNING", "300"))  # 0: none
c.JupyterHub.load_roles = [hub_service_role()]

# -- sign-in and sessions ----------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "backendai"
c.JupyterHub.spawner_class = "backendai"
c.JupyterHub.allow_named_servers = True  # each named server is a session and counts against the policy
c.JupyterHub.cleanup_servers = False  # sessions outlive a hub restart and are picked up again

# Sessions live on a bridge network of our own (no traffic between sessions). The hub listens on
# loopback only; sessions reach its API through the proxy's public port, which the spawner's host
# guard forwards from the network's gateway: nothing else on the host is reachable from a session.
gateway = ensure_session_network(docker.from_env(), network).gateway
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port + 2}"
c.Spawner.hub_connect_url = f"http://{gateway}:{port}"
c.DockerSpawner.network_name = network
c.DockerSpawner.use_internal_ip = True
if os.environ.get("BACKENDAI_HUB_HOST_CAPACITY"):  # e.g. "cpu=2,mem=4g": less than the machine has
    c.BackendAISpawner.host_capacity = dict(
        kv.split("=", 1) for kv in os.environ["BACKENDAI_HUB_HOST_CAPACITY"].split(","))
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# the service's periodic pass reconciles engine, sessions and hub for what is older than this
c.BackendAIService.reconcile_grace = float(os.environ.get("BACKENDAI_HUB_RECONCILE_GRACE", "600"))
if os.environ.get("BACKENDAI_HUB_EXTRA_CONFIG"):  # a file of further settings (tests use one)
    load_subconfig(os.environ["BACKENDAI_HUB_EXTRA_CONFIG"])  # noqa: F821 - traitlets provides it

# the service gets its settings from this config: call hub_service after everything above is set
c.JupyterHub.services = [hub_service(f"http://127.0.0.1:{port + 3}", config=c)]

# -- the example tenancy and how to sign in ------------------------------------------------------------
db = Database.instance(config=c)
creds = bootstrap(db, state)
print(banner(creds, f"http://127.0.0.1:{port}"), flush=True)
