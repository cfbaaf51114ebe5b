"""Image registry: local images labelled ``ai.backend.kernelspec``, their aliases, minimums and apps."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from . import policy as P

KERNELSPEC_LABEL = "ai.backend.kernelspec"
MIN_PREFIX = "ai.backend.resource.min."
# short names users may give for images (BackendAISpawner.image_aliases, BackendAIService.image_aliases)
DEFAULT_ALIASES = {"python:3.11": "backendai-hub/notebook:python3.11"}


@dataclass(frozen=True)
class Image:
    """A session image as its labels describe it."""

    ref: str  # the canonical tag, e.g. backendai-hub/notebook:latest
    id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    aliases: tuple[str, ...] = ()
    min_slots: Mapping[str, Decimal] = field(default_factory=dict)
    apps: tuple[str, ...] = ("jupyterlab",)

    def to_dict(self) -> dict:
        return {"ref": self.ref, "id": self.id, "tags": list(self.tags), "aliases": list(self.aliases),
                "min_resources": P.slots_to_json(self.min_slots), "apps": list(self.apps),
                "labels": dict(self.labels)}


def parse_service_ports(value: str | None) -> tuple[str, ...]:
    """``jupyterlab:http:8888,rstudio:http:8787`` -> ("jupyterlab", "rstudio")."""
    apps = []
    for part in filter(None, (p.strip() for p in (value or "").split(","))):
        name = part.split(":", 1)[0]
        if name and name not in apps:
            apps.append(name)
    return tuple(apps) or ("jupyterlab",)


def image_from_inspect(attrs: Mapping[str, Any], aliases: Mapping[str, str]) -> Image | None:
    """Build an Image from ``docker image inspect`` or image-list data; None when it is no session image."""
    labels = attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}
    # dangling images (build stages, replaced tags) list as "<none>:<none>": not usable by name
    tags = tuple(sorted(t for t in attrs.get("RepoTags") or [] if t and not t.startswith("<none>")))
    if labels.get(KERNELSPEC_LABEL) is None or not tags:
        return None
    mins: dict[str, Decimal] = {}
    for key, value in labels.items():
        if key.startswith(MIN_PREFIX):
            slot = key[len(MIN_PREFIX):]
            try:
                mins[slot] = P.parse_amount(slot, value)
            except P.SlotError:
                continue  # a malformed label does not make the image unusable
    ref = next((t for t in tags if t.endswith(":latest")), tags[0])
    own_aliases = tuple(sorted(a for a, target in aliases.items() if target in tags))
    return Image(ref=ref, id=attrs.get("Id", ""), tags=tags, labels=dict(labels), aliases=own_aliases,
                 min_slots=mins, apps=parse_service_ports(labels.get("ai.backend.service-ports")))


class ImageCatalog:
    """Session images on the local engine, listed at most every ``ttl`` seconds (not per spawn).

    ``api_factory`` returns a low-level ``docker.APIClient`` (DockerSpawner's ``client``).
    """

    def __init__(self, api_factory, aliases: Mapping[str, str] | None = None, ttl: float = 30):
        self._api_factory = api_factory
        self.aliases = dict(aliases or {})
        self.ttl = ttl
        self._images: list[Image] = []
        self._at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> list[Image]:
        """Blocking: ask the engine (call from an executor)."""
        api = self._api_factory()
        found = []
        for summary in api.images(filters={"label": KERNELSPEC_LABEL}):
            image = image_from_inspect(summary, self.aliases)
            if image is not None:
                found.append(image)
        self._images = sorted(found, key=lambda i: i.ref)
        self._at = time.monotonic()
        return self._images

    def images(self) -> list[Image]:
        if time.monotonic() - self._at > self.ttl:
            with self._lock:  # a burst of spawns lists the engine's images once, not once each
                if time.monotonic() - self._at > self.ttl:
                    self.refresh()
        return self._images

    def resolve(self, name: str) -> Image | None:
        """An image by alias, tag, or repository name (``:latest`` implied); a miss re-lists once."""
        target = self.aliases.get(name, name)
        candidates = {target, f"{target}:latest"} if ":" not in target.rsplit("/", 1)[-1] else {target}
        for attempt in range(2):
            for image in self.images() if attempt == 0 else self.refresh():
                if candidates & set(image.tags):
                    return image
        return None
