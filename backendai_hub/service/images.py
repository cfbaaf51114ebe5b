"""REST resource: images (the session images on this host, with their aliases, labels and apps)."""

from __future__ import annotations

import asyncio

import docker.errors
import requests

from ..errors import ServiceUnavailable
from ..resources import SLOTS_OUT, STR, STR_LIST
from .base import APIHandler
from .routes import Op, Route


class ImagesHandler(APIHandler):
    async def get(self):
        catalog = self.settings["image_catalog"]
        try:
            images = await asyncio.get_running_loop().run_in_executor(None, catalog.images)
        except (docker.errors.DockerException, requests.ConnectionError) as e:
            # the engine is down or restarting: the client may ask again, as when the database is away
            raise ServiceUnavailable(f"the Docker engine cannot be reached: {type(e).__name__}",
                                     backend="docker") from None
        self.write_page([i.to_dict() for i in images])


SCHEMAS = {
    "Image": {"ref": STR, "id": STR, "tags": STR_LIST, "aliases": STR_LIST, "min_resources": SLOTS_OUT,
              "apps": STR_LIST, "labels": {"type": "object", "additionalProperties": STR}},
}
ROUTES = [Route(r"images", ImagesHandler, ops={"get": Op(page="Image")})]
