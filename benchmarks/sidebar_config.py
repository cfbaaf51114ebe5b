"""Extra hub settings for the sidebar benchmarks (BACKENDAI_HUB_EXTRA_CONFIG): folders without
loopback quota images (a thousand folders would be a thousand loop mounts), nothing culled; with
BENCH_SIDEBAR_LISTENER_PORT, the service's public transfer listener on that loopback port."""

import os

c = get_config()  # noqa: F821 - provided by JupyterHub
c.StorageHosts.quota_backend = "none"
if os.environ.get("BENCH_SIDEBAR_LISTENER_PORT"):
    c.BackendAIService.transfer_bind_url = f"http://127.0.0.1:{os.environ['BENCH_SIDEBAR_LISTENER_PORT']}"
