"""GET images while the Docker engine cannot be reached (down, or restarting): a 503 that says so, not a 500.

The engine is made unreachable by pointing the catalog at a socket path where no engine listens (this
machine's own engine stays up for everyone else)."""

import tempfile

import docker

from backendai_hub.images import ImageCatalog
from tests.integration.service_harness import service_fixtures


def _no_engine(tmp):
    return lambda: docker.APIClient(base_url=f"unix://{tmp}/no-engine.sock", version="1.41", timeout=2)


def _setup(svc):
    svc.app.settings["image_catalog"] = ImageCatalog(_no_engine(tempfile.mkdtemp(prefix="no-engine-")))


template, svc = service_fixtures(setup=_setup)


async def test_images_answers_503_naming_the_engine_while_it_is_unreachable(svc):
    resp = await svc.fetch("alice", "GET", "images")
    assert resp.code == 503, resp.body
    body = resp.body.decode()
    assert "Docker engine cannot be reached" in body and '"unavailable": "docker"' in body
    assert resp.headers["Retry-After"] == "5"
