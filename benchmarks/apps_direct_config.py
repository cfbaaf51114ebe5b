"""Extra hub settings for benchmarks/apps_ws.py (BACKENDAI_HUB_EXTRA_CONFIG): apps listen on the session's
network address too (not only its loopback), so the benchmark can reach them directly beside the proxy.
Never in production: the hub proxy's authentication is bypassed on that port."""

c = get_config()  # noqa: F821 - provided by JupyterHub
c.BackendAISpawner.environment = {"BACKENDAI_HUB_APP_BIND": "0.0.0.0"}
