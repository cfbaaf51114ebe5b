"""The self-service page's small formatters: uptime and sizes."""

from datetime import datetime, timedelta, timezone

import pytest

from backendai_hub.service.page_data import size_text, uptime
from backendai_hub.service.pages import wants_html

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("ago, text", [
    (None, "-"), (timedelta(seconds=5), "< 1 min"), (timedelta(minutes=7, seconds=59), "7 min"),
    (timedelta(hours=2, minutes=5), "2 h 5 min"), (timedelta(days=3, hours=4, minutes=1), "3 d 4 h"),
    (timedelta(seconds=-30), "< 1 min"),  # a clock a little ahead: never negative
])
def test_uptime(ago, text):
    assert uptime(None if ago is None else NOW - ago, NOW) == text


def test_uptime_of_a_naive_timestamp_is_utc():
    assert uptime((NOW - timedelta(minutes=3)).replace(tzinfo=None), NOW) == "3 min"


@pytest.mark.parametrize("n, text", [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                     (3 << 20, "3.0 MiB"), (int(1.5 * (1 << 30)), "1.5 GiB"), (10 << 30, "10.0 GiB"),
                                     (5 << 60, "5120.0 PiB")])
def test_size_text(n, text):
    assert size_text(n) == text


@pytest.mark.parametrize("accept, html", [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Chromium's navigation
    ("*/*", False), ("", False), ("application/json", False)])  # the Backend.AI client's handshake
def test_the_root_serves_html_only_to_browsers(accept, html):
    assert wants_html(accept) is html
