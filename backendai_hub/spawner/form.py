"""The spawn options form: what the user's policies allow, rendered (pure but for the template)."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from jinja2 import Environment, PackageLoader, select_autoescape

from .. import policy as P
from ..admission import Charge
from ..images import Image

_templates = Environment(loader=PackageLoader("backendai_hub", "templates"), autoescape=select_autoescape())


def render_error(message: str) -> str:
    return _templates.get_template("options_form.html").render(error=message)


PERMISSION_TITLES = {"ro": "read-only in the session", "rw": "read-write", "wd": "read-write, may delete"}
VIA_TITLES = {"owner": "yours", "admin": "a group folder of your domain", "group": "your group's",
              "override": "your group's", "invited": "shared with you", "public": "public"}


def render(images: Iterable[Image], charge: Charge, limits: P.Slots, presets: Mapping[str, str],
           default: Image | None, slots: Iterable[str], folders: Sequence[Mapping] = ()) -> str:
    """The form offering the images the domain and group allow, the user's groups, the presets that fit
    within the effective limits, and the folders the user may mount (vfolders.mounts.mountable) as a
    checklist with their permissions (the values are folder ids)."""
    allowed = set(charge.allowed_images)
    offered = [i for i in images if not allowed or allowed & {i.ref, *i.tags, *i.aliases}]
    fitting = []
    for name, text in presets.items():
        amounts = P.parse_slots(text)
        if all(v <= limits[k] for k, v in amounts.items() if k in limits):
            fitting.append({"name": name, "text": P.format_slots(amounts)})
    return _templates.get_template("options_form.html").render(
        images=offered, default_image=default.ref if default else None, groups=charge.groups, presets=fitting,
        limits=P.format_slots(limits), slots=sorted(slots), folders=list(folders), permission_titles=PERMISSION_TITLES,
        via_titles=VIA_TITLES, error=None)
