"""Fixtures of the in-process REST service tests (see service_harness.py): the plain service's
``template`` and ``svc``, which a module rebinds with ``service_fixtures(...)`` where it needs another."""

from tests.integration.service_harness import service_fixtures

template, svc = service_fixtures()
