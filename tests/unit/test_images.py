"""Session images as their labels describe them (pure)."""

from decimal import Decimal

from backendai_hub.images import image_from_inspect, parse_service_ports

LABELS = {"ai.backend.kernelspec": "1", "ai.backend.resource.min.cpu": "1", "ai.backend.resource.min.mem": "256m",
          "ai.backend.resource.min.bogus": "lots", "ai.backend.service-ports": "jupyterlab:http:8888,shell:http:8888"}


def test_labels_give_minimums_apps_and_aliases():
    image = image_from_inspect({"Id": "sha256:1", "RepoTags": ["hub/nb:py3.11", "hub/nb:latest"], "Labels": LABELS},
                               {"python:3.11": "hub/nb:py3.11", "r": "hub/r:latest"})
    assert image.ref == "hub/nb:latest" and image.tags == ("hub/nb:latest", "hub/nb:py3.11")
    assert image.aliases == ("python:3.11",)
    assert image.min_slots == {"cpu": Decimal(1), "mem": Decimal(256 * 2**20)}  # a bad label is ignored
    assert image.apps == ("jupyterlab", "shell")


def test_images_without_kernelspec_or_name_are_not_session_images():
    assert image_from_inspect({"Id": "x", "RepoTags": ["debian:12"], "Labels": {}}, {}) is None
    assert image_from_inspect({"Id": "x", "RepoTags": ["<none>:<none>"], "Labels": LABELS}, {}) is None
    assert image_from_inspect({"Id": "x", "RepoTags": None, "Labels": LABELS}, {}) is None


def test_service_ports_default_to_jupyterlab():
    assert parse_service_ports(None) == ("jupyterlab",)
    assert parse_service_ports("rstudio:http:8787, rstudio:http:8788") == ("rstudio",)
