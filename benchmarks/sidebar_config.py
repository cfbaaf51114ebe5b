"""Extra hub settings for the sidebar benchmarks (BACKENDAI_HUB_EXTRA_CONFIG): folders without
loopback quota images (a thousand folders would be a thousand loop mounts), nothing culled."""

c = get_config()  # noqa: F821 - provided by JupyterHub
c.StorageHosts.quota_backend = "none"
