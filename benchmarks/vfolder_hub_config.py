"""The hub of `benchmarks/vfolder_transfer.py`: JupyterHub, configurable-http-proxy and our REST service.

The service runs as a hub-managed service at /services/backendai/ on the proxy's public port, exactly
as in `jupyterhub_config.py`, but nothing else of the embedded config: no Docker, no session network,
no spawns (NullAuthenticator: nobody signs in; the benchmark signs requests with a keypair). Settings
come from the environment:

  BENCH_VF_STATE    state dir (hub SQLite, cookie secret, pid files), required
  BENCH_VF_PORT     public port; the proxy API uses PORT+1, the hub PORT+2, the service PORT+3
  BENCH_VF_DB       our database URL (a tenancy with keypairs), required
  BENCH_VF_KEY      its crypt key file, required
  BENCH_VF_STORAGE  the root of storage host "local", required
  BENCH_VF_LISTENER 1: the service's public transfer listener on PORT+4 (request-upload answers it)
"""

import os
from pathlib import Path

from backendai_hub.scopes import CUSTOM_SCOPES
from backendai_hub.service.server import hub_service, hub_service_role

c = get_config()  # noqa: F821 - provided by JupyterHub

here = Path(__file__).resolve().parent.parent
state = Path(os.environ["BENCH_VF_STATE"]).resolve()
port = int(os.environ.get("BENCH_VF_PORT", "8200"))

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port + 2}"
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
c.ConfigurableHTTPProxy.command = [str(here / "node_modules" / ".bin" / "configurable-http-proxy")]
c.JupyterHub.authenticator_class = "null"

c.JupyterHub.custom_scopes = CUSTOM_SCOPES
c.Database.url = os.environ["BENCH_VF_DB"]
c.Database.crypt_key_file = os.environ["BENCH_VF_KEY"]
c.StorageHosts.hosts = {"local": os.environ["BENCH_VF_STORAGE"]}
c.StorageHosts.quota_backend = "none"
c.MockPlugin.devices = []
c.BackendAIService.cull_interval = 3600
if os.environ.get("BENCH_VF_LISTENER") == "1":
    c.BackendAIService.transfer_bind_url = f"http://127.0.0.1:{port + 4}"
c.JupyterHub.services = [hub_service(f"http://127.0.0.1:{port + 3}", config=c)]
c.JupyterHub.load_roles = [hub_service_role()]
