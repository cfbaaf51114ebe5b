"""The spawn options form: what the user's policies allow, rendered (pure but for the template)."""

from __future__ import annotations

from typing import Iterable, Mapping

from jinja2 import Environment, PackageLoader, select_autoescape

from .. import policy as P
from ..admission import Charge
from ..images import Image

_templates = Environment(loader=PackageLoader("backendai_hub", "templates"), autoescape=select_autoescape())


def render_error(message: str) -> str:
    return _templates.get_template("options_form.html").render(error=message)


def render(images: Iterable[Image], charge: Charge, limits: P.Slots, presets: Mapping[str, str],
           default: Image | None, slots: Iterable[str]) -> str:
    """The form offering the images the domain and group allow, the user's groups, and the presets
    that fit within the effective limits."""
    allowed = set(charge.allowed_images)
    offered = [i for i in images if not allowed or allowed & {i.ref, *i.tags, *i.aliases}]
    fitting = []
    for name, text in presets.items():
        amounts = P.parse_slots(text)
        if all(v <= limits[k] for k, v in amounts.items() if k in limits):
            fitting.append({"name": name, "text": P.format_slots(amounts)})
    return _templates.get_template("options_form.html").render(
        images=offered, default_image=default.ref if default else None, groups=charge.groups, presets=fitting,
        limits=P.format_slots(limits), slots=sorted(slots), error=None)
