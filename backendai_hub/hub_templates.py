"""The hub's template overrides (``c.JupyterHub.template_paths``): page.html links the self-service page."""

from __future__ import annotations

from importlib.resources import files

TEMPLATE_DIR = str(files("backendai_hub") / "templates")


def template_paths() -> list[str]:
    """For ``c.JupyterHub.template_paths``: our overrides first, the stock templates behind them
    (an override extends its stock page as ``templates/<name>``)."""
    return [TEMPLATE_DIR]
