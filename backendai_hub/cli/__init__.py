"""The admin CLI, `backendai-hub`: see :func:`main`."""

from .main import main

__all__ = ["main"]
