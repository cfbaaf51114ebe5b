"""Sphinx configuration of backendai-hub's documentation (MyST pages, traits reference)."""

from __future__ import annotations

import autodoc_traits
from traitlets import Undefined

import backendai_hub

project = "backendai-hub"
author = "backendai-hub contributors"
copyright = "2026, backendai-hub contributors"
version = release = backendai_hub.__version__

extensions = [
    "myst_parser",
    "autodoc_traits",  # .. autoconfigurable:: renders a class's config=True traits from their help text
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The reference shows what a class's settings look like on the config object (c.Class.trait).
autodoc_member_order = "bysource"
autodoc_typehints = "none"

# Built offline (make test), so no intersphinx: the pages link to JupyterHub's and DockerSpawner's
# own documentation by URL.
nitpicky = True

html_theme = "pydata_sphinx_theme"
html_title = f"backendai-hub {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []
# every page is a top-level section, so the per-section left sidebar would be empty: the header
# bar is the navigation
html_sidebars = {"**": []}


def _skip_upstream_traits(app, what, name, obj, skip, options):
    """Document only settings that backendai-hub defines.

    autodoc-traits adds every config=True trait of a class, inherited ones too; the settings that
    backendai_hub's classes inherit from JupyterHub's Authenticator or DockerSpawner are documented
    there (the reference page links to them), and their help text is not ours to keep warning-free.
    """
    owner = getattr(obj, "this_class", None)
    if owner is not None and getattr(obj, "metadata", {}).get("config"):
        if not owner.__module__.startswith("backendai_hub"):
            return True
    return None


class _TraitDocumenter(autodoc_traits.TraitDocumenter):
    """autodoc-traits' trait documenter, showing container defaults too.

    Dict and List traits keep their default outside ``default_value`` (it reads Undefined, and the
    page would say ``Dict()`` for ``{'cpu': '1', 'mem': '1g'}``); ask the trait for its repr then.
    A default computed at run time (``@default``) stays blank: its help text says what it is.
    """

    priority = autodoc_traits.TraitDocumenter.priority + 1

    def add_directive_header(self, sig):
        trait = self.object
        if trait.default_value is Undefined and trait.metadata.get("config"):
            value = trait.default_value_repr()
            value = "" if value == repr(Undefined) else value
            self.options.annotation = f"c.{self.format_name()} = {type(trait).__name__}({value})"
            autodoc_traits.AttributeDocumenter.add_directive_header(self, sig)
        else:
            super().add_directive_header(sig)


def setup(app):
    app.connect("autodoc-skip-member", _skip_upstream_traits)
    app.add_autodocumenter(_TraitDocumenter, override=True)
