"""Session options from the form and the REST API, validated the same way (pure)."""

from decimal import Decimal

import pytest

from backendai_hub.errors import Forbidden, InvalidInput
from backendai_hub.images import Image
from backendai_hub.spawner.options import options_from_form, parse_options

NB = Image(ref="hub/nb:latest", id="sha256:1", tags=("hub/nb:latest", "hub/nb:py3.11"), labels={},
           aliases=("python:3.11",), min_slots={"cpu": Decimal(1), "mem": Decimal(256 * 2**20)},
           apps=("jupyterlab", "shell"))
R = Image(ref="hub/r:latest", id="sha256:2", tags=("hub/r:latest",), labels={}, apps=("rstudio",))
CATALOG = {"hub/nb:latest": NB, "hub/nb": NB, "python:3.11": NB, "hub/nb:py3.11": NB, "hub/r": R, "hub/r:latest": R}
DEFAULTS = {"cpu": Decimal(1), "mem": Decimal(2**30)}


def parse(raw, allowed=()):
    return parse_options(raw, resolve_image=CATALOG.get, default_image="hub/nb", default_resources=DEFAULTS,
                         allowed_images=allowed)


@pytest.mark.parametrize("raw, image, resources, app", [
    ({}, NB, DEFAULTS, "jupyterlab"),
    ({"image": "python:3.11"}, NB, DEFAULTS, "jupyterlab"),
    ({"resources": {"cpu": 2, "mem": "4g"}}, NB, {"cpu": Decimal(2), "mem": Decimal(4 * 2**30)}, "jupyterlab"),
    ({"resources": "cpu=0.5"}, R, {"cpu": Decimal("0.5"), "mem": Decimal(2**30)}, "rstudio"),
    ({"app": "shell"}, NB, DEFAULTS, "shell"),
])
def test_accepted(raw, image, resources, app):
    if image is R:
        raw = {**raw, "image": "hub/r", "app": "rstudio"}
    opts = parse(raw)
    assert (opts.image, opts.resources, opts.app) == (image, resources, app)


@pytest.mark.parametrize("raw, error, field, fragment", [
    ({"colour": "red"}, InvalidInput, "colour", "unknown option 'colour'"),
    ({"image": "nope"}, InvalidInput, "image", "'nope' is not a known session image"),
    ({"image": 3}, InvalidInput, "image", "must be an image name"),
    ({"resources": {"mem": "128m"}}, InvalidInput, "resources", "below the image's minimum 256m"),
    ({"resources": {"cpu": 0}}, InvalidInput, "resources", "greater than zero"),
    ({"resources": {"mem": "12X"}}, InvalidInput, "resources", "'12X' is not an amount"),
    ({"app": "rstudio"}, InvalidInput, "app", "not offered by image hub/nb:latest (offers: jupyterlab, shell)"),
    ({"vfolders": "../etc"}, InvalidInput, "vfolders", "list of vfolder names"),
    ({"group": ["ml"]}, InvalidInput, "group", "must be a group name"),
])
def test_refused(raw, error, field, fragment):
    with pytest.raises(error) as e:
        parse(raw)
    assert e.value.field == field and fragment in e.value.message


def test_allowed_images_of_domain_and_group():
    assert parse({"image": "python:3.11"}, allowed=("hub/nb:py3.11",)).image is NB  # any tag or alias counts
    with pytest.raises(Forbidden, match="image 'hub/r' is not allowed for your domain and group"):
        parse({"image": "hub/r", "app": "rstudio"}, allowed=("hub/nb:latest",))


def test_a_default_below_the_image_minimum_is_raised_to_it():
    opts = parse_options({}, resolve_image=CATALOG.get, default_image="hub/nb",
                         default_resources={"cpu": Decimal("0.5"), "mem": Decimal(128 * 2**20)})
    assert opts.resources == {"cpu": Decimal(1), "mem": Decimal(256 * 2**20)}


def test_form_fields_become_the_same_options():
    form = {"image": ["python:3.11"], "group": ["ml"], "resources.cpu": ["2"], "resources.mem": [""],
            "vfolders": ["data, models", ""], "app": [""]}
    assert options_from_form(form, ("cpu", "mem")) == {"image": "python:3.11", "group": "ml",
                                                       "resources": {"cpu": "2"}, "vfolders": ["data", "models"]}


@pytest.mark.parametrize("origin, base, url", [
    ("http://10.0.0.1:8000", "/hub/", "http://10.0.0.1:8000/services/backendai/"),
    ("http://10.0.0.1:8000/", "/jh/hub/", "http://10.0.0.1:8000/jh/services/backendai/"),
    ("https://h", "/", "https://h/services/backendai/"),
    ("", "/hub/", None),
])
def test_the_sessions_service_url_is_beside_the_hub(origin, base, url):
    from backendai_hub.spawner.sidebar import service_url
    assert service_url(origin, base, "backendai") == url
