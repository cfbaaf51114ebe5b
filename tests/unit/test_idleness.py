"""When a session must stop: kernels busy, terminals, accelerator utilisation over a window, the
accelerator idle timeout, and when its warning shows (pure)."""

from datetime import datetime, timedelta, timezone

import pytest

from backendai_hub.idleness import Activity, Limits, Plan, UtilWindow, plan, warn_now
from backendai_hub.service.session_probe import activity_from

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
START = NOW - timedelta(hours=2)


def ago(seconds):
    return NOW - timedelta(seconds=seconds)


def iso(seconds):
    return ago(seconds).isoformat().replace("+00:00", "Z")


IDLE_60 = Limits(idle_timeout=60)


@pytest.mark.parametrize("kernels, terminals, due", [
    ([{"execution_state": "idle", "last_activity": iso(600)}], [], True),
    # a kernel busy with a long cell has no recent activity yet is not idle
    ([{"execution_state": "busy", "last_activity": iso(3000)}], [], False),
    ([{"execution_state": "idle", "last_activity": iso(600)}, {"execution_state": "busy"}], [], False),
    ([{"execution_state": "idle", "last_activity": iso(30)}], [], False),  # a cell just finished
    ([], [{"name": "1", "last_activity": iso(20)}], False),  # a terminal printing (or typed into)
    ([], [{"name": "1", "last_activity": iso(90)}], True),
    (None, None, True),  # nothing could be read: the hub's activity decides
    ("not a list", [42, {"last_activity": "garbage"}], True),  # junk is no activity
])
def test_kernels_and_terminals_count_as_activity(kernels, terminals, due):
    act = activity_from(ago(600), kernels, terminals)
    p = plan(START, act, IDLE_60, NOW)
    assert p.due(NOW) is due
    if due:
        assert p.reason == "idle for more than 60 s"


def test_hub_activity_alone_keeps_a_session():
    assert not plan(START, activity_from(ago(10), [], []), IDLE_60, NOW).due(NOW)


@pytest.mark.parametrize("holds, expected", [
    (True, "idle for more than 300 s while holding accelerators"),  # the shorter accelerator timeout
    (False, None),  # a CPU-only session under the same policy keeps its hour
])
def test_the_accelerator_idle_timeout_applies_to_sessions_holding_devices(holds, expected):
    limits = Limits(idle_timeout=3600, idle_timeout_accelerator=300, holds_accelerators=holds)
    p = plan(START, Activity(hub=ago(900)), limits, NOW)
    assert (p.reason if p.due(NOW) else None) == expected


def test_without_an_accelerator_timeout_the_idle_timeout_applies_to_devices_too():
    limits = Limits(idle_timeout=600, holds_accelerators=True)
    assert plan(START, Activity(hub=ago(900)), limits, NOW).reason == "idle for more than 600 s"


def test_the_lifetime_is_not_put_off_by_activity():
    p = plan(START, Activity(kernel_busy=True), Limits(lifetime=3600, idle_timeout=60), NOW)
    assert p == Plan(START + timedelta(seconds=3600), "max session lifetime of 3600 s reached")


def test_the_plan_names_the_earliest_stop():
    p = plan(ago(100), Activity(hub=ago(50)), Limits(lifetime=1000, idle_timeout=120), NOW)
    assert p == Plan(ago(50) + timedelta(seconds=120), "idle for more than 120 s") and not p.due(NOW)
    assert plan(START, Activity(), Limits(), NOW) == Plan(None, None)


def _window(samples, window=300, threshold=10):
    w = UtilWindow(window, threshold)
    for t, u in samples:
        w.add(ago(t), u)
    return w.busy_at


@pytest.mark.parametrize("samples, busy_at", [
    ([(240, 0), (180, 0), (120, 0), (60, 0), (0, 0)], None),  # idle devices
    ([(240, 80), (180, 90), (120, 70), (60, 85), (0, 75)], 0),  # training
    ([(240, 0), (180, 0), (120, 30), (60, 0), (0, 0)], 120),  # one blip: busy only while the mean is up
    ([(240, 5), (180, 5), (120, 5), (60, 5), (0, 5)], None),  # under the threshold all along
    ([(900, 100), (0, 0)], 900),  # the old sample fell out of the window: busy then, not now
])
def test_accelerator_utilisation_is_judged_over_the_window(samples, busy_at):
    assert _window(samples) == (ago(busy_at) if busy_at is not None else None)


def test_busy_accelerators_keep_a_session_that_is_otherwise_idle():
    limits = Limits(idle_timeout=600, idle_timeout_accelerator=300, holds_accelerators=True)
    busy = _window([(240, 80), (180, 90), (120, 70), (60, 85), (0, 75)])
    assert not plan(START, activity_from(ago(3000), [], [], busy), limits, NOW).due(NOW)
    idle = _window([(240, 0), (180, 0), (120, 0), (60, 0), (0, 0)])
    assert plan(START, activity_from(ago(3000), [], [], idle), limits, NOW).due(NOW)


@pytest.mark.parametrize("stop_in, warning, shows", [
    (400, 300, False), (300, 300, True), (10, 300, True), (-5, 300, True), (10, 0, False),
])
def test_the_warning_shows_in_the_last_seconds(stop_in, warning, shows):
    assert warn_now(Plan(NOW + timedelta(seconds=stop_in), "r"), NOW, warning) is shows
    assert warn_now(Plan(None, None), NOW, warning) is False


def test_a_session_at_work_is_not_warned_even_when_the_idle_timeout_is_shorter_than_the_warning():
    limits = Limits(idle_timeout=60, idle_timeout_accelerator=30, holds_accelerators=True)
    for act in (Activity(hub=ago(3000), kernel_busy=True), Activity(hub=ago(3000), accelerator=NOW)):
        p = plan(START, act, limits, NOW)
        assert p == Plan(None, None) and not warn_now(p, NOW, 300)
    # the devices were busy at the last pass, not this one: idle counts from then
    p = plan(START, Activity(hub=ago(3000), accelerator=ago(10)), limits, NOW)
    assert p == Plan(ago(10) + timedelta(seconds=30), "idle for more than 30 s while holding accelerators")
