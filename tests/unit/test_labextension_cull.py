"""The labextension's server part, pure half: the service's planned stop parsed (bad fields named),
the terminal banner, and the banner written to terminal clients without counting as their activity."""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "labextension" / "backendai_hub_labextension" / "cull.py"
_spec = importlib.util.spec_from_file_location("backendai_hub_labextension_cull", _PATH)
cull = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cull
_spec.loader.exec_module(cull)

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def test_a_planned_stop_and_its_banner():
    stop = cull.parse({"stop_at": "2026-01-01T12:05:00Z", "reason": "idle for\nmore than 60 s"}, NOW)
    assert stop.to_dict() == {"stop_at": "2026-01-01T12:05:00+00:00", "reason": "idle for more than 60 s",
                              "updated_at": NOW.isoformat()}
    text = cull.banner(stop)
    assert "this session will be stopped at 12:05:00 UTC: idle for more than 60 s. Save your work." in text
    assert text.startswith("\r\n") and text.endswith("\x1b[0m\r\n")
    off = cull.parse({"stop_at": None}, NOW)
    assert off.stop_at is None and "called off" in cull.banner(off)


@pytest.mark.parametrize("body, field", [
    ([], "body"), ("x", "body"),
    ({"stop_at": 5, "reason": "r"}, "stop_at"),
    ({"stop_at": "tomorrow", "reason": "r"}, "stop_at"),
    ({"stop_at": "2026-01-01T12:05:00", "reason": "r"}, "stop_at"),  # no time zone
    ({"stop_at": "2026-01-01T12:05:00Z"}, "reason"),
    ({"stop_at": "2026-01-01T12:05:00Z", "reason": "  "}, "reason"),
    ({"stop_at": "2026-01-01T12:05:00Z", "reason": "x" * 501}, "reason"),
])
def test_bad_input_names_the_field(body, field):
    with pytest.raises(cull.BadInput) as e:
        cull.parse(body, NOW)
    assert e.value.field == field


class Client:
    def __init__(self, fail=False):
        self.screen, self.fail = [], fail

    def on_pty_read(self, text):
        if self.fail:
            raise OSError("closed")
        self.screen.append(text)


class Term:
    def __init__(self, clients, last):
        self.clients, self.last_activity = clients, last


class Manager:
    def __init__(self, terminals):
        self.terminals = terminals


def test_the_banner_reaches_every_client_and_leaves_activity_as_it_was():
    before = datetime(2026, 1, 1, 11, tzinfo=timezone.utc)
    a, b, broken = Client(), Client(), Client(fail=True)
    terms = {"1": Term([a, broken], before), "2": Term([b], before)}
    settings = {"terminal_manager": Manager(terms), "terminal_last_activity": before}

    def touching(client):  # what jupyter_server_terminals' socket does on every write
        def write(text):
            client.screen.append(text)
            for t in terms.values():
                t.last_activity = NOW
            settings["terminal_last_activity"] = NOW
        return write

    a.on_pty_read = touching(a)
    assert cull.show_in_terminals(settings, "BANNER") == 2
    assert a.screen == ["BANNER"] and b.screen == ["BANNER"]
    assert [t.last_activity for t in terms.values()] == [before, before]
    assert settings["terminal_last_activity"] == before
    assert cull.show_in_terminals({}, "BANNER") == 0  # terminals off
