"""Extra hub settings for tests/docker/test_apps_rstudio.py (loaded through BACKENDAI_HUB_EXTRA_CONFIG):
an admin allows root for exactly one test image."""

c = get_config()  # noqa: F821 - provided by JupyterHub
c.BackendAISpawner.allow_root_images = ["backendai-hub/apps-root-allowed:test"]
