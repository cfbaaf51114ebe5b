"""When a session must stop: lifetime and idle timeout (pure)."""

from datetime import datetime, timedelta, timezone

import pytest

from backendai_hub.service.culler import overdue

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("started, active, lifetime, idle, expected", [
    (3600, 10, None, None, None),
    (3600, 10, 7200, None, None),
    (3600, 10, 1800, None, "max session lifetime of 1800 s reached"),
    (3600, 100, None, 60, "idle for more than 60 s"),
    (3600, 30, None, 60, None),
    (3600, None, None, 60, "idle for more than 60 s"),  # never active: idle since start
    (30, None, None, 60, None),
    (3600, 100, 1800, 60, "max session lifetime of 1800 s reached"),  # lifetime is named first
])
def test_overdue(started, active, lifetime, idle, expected):
    started_at = NOW - timedelta(seconds=started)
    last = NOW - timedelta(seconds=active) if active is not None else None
    assert overdue(started_at, last, lifetime=lifetime, idle_timeout=idle, now=NOW) == expected
