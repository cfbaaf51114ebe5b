"""Fixtures of the in-process REST service tests (see service_harness.py)."""

import pytest

from tests.integration.service_harness import Service, make_template


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The test tenancy, built once per module and copied for each test."""
    return make_template(tmp_path_factory.mktemp("tenancy"))


@pytest.fixture
async def svc(template, tmp_path):
    """The service on a real port with a fresh copy of the tenancy."""
    s = Service(template, tmp_path)
    yield s
    s.stop()
