"""Fixtures of the tests on a real Docker engine."""

import pytest

IMAGE = "backendai-hub/notebook:latest"


@pytest.fixture(scope="module")
def client(docker_available):
    """The engine, with the session image there: built by kernels/build.sh (tests/docker/test_images.py),
    never pulled."""
    import docker

    c = docker.from_env(timeout=120)
    c.images.get(IMAGE)
    yield c
    c.close()
