"""RStudio Server itself (not the test double) end to end, through the hub proxy: runs only when the local
engine holds a session image with a real `rserver` (built with RSTUDIO_DEB=... bash kernels/build.sh r, or
on a BASE_IMAGE such as rocker/rstudio); otherwise it is skipped and says why. That is the one skip the
project allows (issue 12): RStudio Server is in none of the registries reachable here."""

from __future__ import annotations

import pytest

from tests.docker.apps_common import browser_session, start_ready, tokens
from tests.hubproc import admin_token, hub_fixture, stop_server

pytestmark = pytest.mark.docker

DOUBLE_MARK = "TEST DOUBLE"
hub = hub_fixture("apps-rstudio-real")


def image_with_rstudio(client) -> str | None:
    """A local session image that advertises rstudio and holds a real rserver (not tests' double)."""
    for image in client.images.list(filters={"label": "ai.backend.kernelspec"}):
        labels = image.labels or {}
        if "rstudio:" not in labels.get("ai.backend.service-ports", "") or not image.tags:
            continue
        if DOUBLE_MARK in labels.get("org.opencontainers.image.description", ""):
            continue
        out = client.containers.run(image.tags[0], ["sh", "-c", "for p in $(command -v rserver) "
                                                    "/usr/lib/rstudio-server/bin/rserver; do [ -x $p ] && "
                                                    "head -c 4 $p | od -An -c | tr -d ' \\n'; done"],
                                    network_mode="none", remove=True, user="1000", entrypoint=[])
        if b"ELF" in out:  # the real rserver is an ELF binary, the double a script
            return image.tags[0]
    return None


@pytest.fixture(scope="module")
def rstudio_image(client):
    tag = image_with_rstudio(client)
    if tag is None:
        pytest.skip("no local image holds RStudio Server's rserver (RStudio is in no reachable registry): build one "
                    "with RSTUDIO_DEB=<rstudio-server .deb> bash kernels/build.sh r, or BASE_IMAGE=<rocker/rstudio "
                    "image> bash kernels/build.sh r; the rserver test double covers the launch and the auth matrix")
    return tag


def test_real_rstudio_through_the_hub_proxy(hub, rstudio_image):
    admin_token(hub)
    who = tokens(hub)
    url = start_ready(hub, who["demo"], "rstudio", rstudio_image, "rstudio")
    try:
        owner = browser_session(hub, "demo")
        r = owner.get(url, timeout=120)
        assert r.status_code == 200 and r.url.startswith(f"{url}rstudio/"), (r.status_code, r.url)
        assert "RStudio" in r.text
        assert requests_refused(hub, url)
    finally:
        stop_server(hub, who["demo"], "demo", "rstudio")


def requests_refused(hub, url: str) -> bool:
    import requests

    r = requests.get(f"{url}rstudio/", timeout=30)
    return r.status_code == 403 or "/hub/login" in r.url
