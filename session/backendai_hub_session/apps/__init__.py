"""App launchers and terminal helpers of backendai-hub sessions (jupyter-server-proxy entry points, server extensions)."""
