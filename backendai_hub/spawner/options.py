"""User options of a session (form or REST JSON), validated the same way: pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping

from .. import policy as P
from ..errors import Forbidden, InvalidInput
from ..images import Image

OPTION_KEYS = ("image", "group", "resources", "vfolders", "app")
VFOLDER_NAME_RE = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class SessionOptions:
    image: Image
    group: str | None
    resources: dict[str, Decimal]
    vfolders: tuple[str, ...] = ()
    app: str = "jupyterlab"
    raw: Mapping[str, Any] = field(default_factory=dict)


def parse_options(raw: Mapping[str, Any] | None, *, resolve_image: Callable[[str], Image | None],
                  default_image: str, default_resources: Mapping[str, Decimal],
                  allowed_images: tuple[str, ...] = ()) -> SessionOptions:
    """Validate user options; raise InvalidInput (400, names the field) or Forbidden (403, names the rule).

    ``allowed_images`` is what the user's domain and group allow (empty: any session image).
    """
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(OPTION_KEYS))
    if unknown:
        raise InvalidInput(f"unknown option {unknown[0]!r} (known: {', '.join(OPTION_KEYS)})", field=unknown[0])

    name = raw.get("image") or default_image
    if not isinstance(name, str):
        raise InvalidInput("image: must be an image name or alias", field="image")
    image = resolve_image(name)
    if image is None:
        raise InvalidInput(f"image: {name!r} is not a known session image", field="image")
    if allowed_images and not (set(allowed_images) & ({image.ref, *image.tags, *image.aliases, name})):
        raise Forbidden(f"image {name!r} is not allowed for your domain and group "
                        f"(allowed: {', '.join(allowed_images)})")

    group = raw.get("group") or None
    if group is not None and not isinstance(group, str):
        raise InvalidInput("group: must be a group name", field="group")

    try:
        requested = P.parse_slots(raw.get("resources"), allow_zero=False, field="resources")
    except P.SlotError as e:
        raise InvalidInput(str(e), field="resources") from None
    resources = {**{k: v for k, v in default_resources.items()}, **requested}
    # an image's minimum raises a default, but an explicit request below it is an error
    for slot, minimum in image.min_slots.items():
        if slot in requested and requested[slot] < minimum:
            raise InvalidInput(f"resources.{slot}: {P.format_amount(slot, requested[slot])} is below the "
                               f"image's minimum {P.format_amount(slot, minimum)} "
                               f"(label ai.backend.resource.min.{slot})", field="resources")
        if slot not in requested and resources.get(slot, Decimal(0)) < minimum:
            resources[slot] = minimum

    vfolders = raw.get("vfolders") or []
    if isinstance(vfolders, str):
        vfolders = [v.strip() for v in vfolders.split(",") if v.strip()]
    if not isinstance(vfolders, list) or not all(isinstance(v, str) and VFOLDER_NAME_RE.match(v) for v in vfolders):
        raise InvalidInput("vfolders: must be a list of vfolder names", field="vfolders")

    app = raw.get("app") or "jupyterlab"
    if not isinstance(app, str) or app not in image.apps:
        raise InvalidInput(f"app: {app!r} is not offered by image {image.ref} (offers: {', '.join(image.apps)})",
                           field="app")
    return SessionOptions(image=image, group=group, resources=resources, vfolders=tuple(dict.fromkeys(vfolders)),
                          app=app, raw=raw)


def options_from_form(formdata: Mapping[str, list[str]], slot_fields: tuple[str, ...]) -> dict:
    """The HTML form's fields (lists of strings) as the same dict a REST client sends."""
    def first(key: str) -> str:
        return (formdata.get(key) or [""])[0].strip()

    out: dict[str, Any] = {}
    for key in ("image", "group", "app"):
        if first(key):
            out[key] = first(key)
    resources = {slot: first(f"resources.{slot}") for slot in slot_fields if first(f"resources.{slot}")}
    if resources:
        out["resources"] = resources
    vfolders = [v.strip() for chunk in formdata.get("vfolders", []) for v in chunk.split(",") if v.strip()]
    if vfolders:
        out["vfolders"] = vfolders
    return out
