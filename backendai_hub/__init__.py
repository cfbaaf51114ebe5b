"""backendai-hub: Backend.AI-style multi-tenancy for JupyterHub."""

__version__ = "0.1.0"
