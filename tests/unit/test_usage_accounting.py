"""Usage accounting, pure: a sample's delta split exactly at hour, midnight and month-end edges."""

from datetime import datetime, timedelta, timezone

import pytest

from backendai_hub.errors import InvalidInput
from backendai_hub.usage.accounting import Allocated, Counters, allocated, split_hours, spread
from backendai_hub.usage.query import parse_query
from backendai_hub.usage.sampling import container_counters, counters_from_stats

UTC = timezone.utc
GiB = 1 << 30


def t(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_split_at_hour_edges_adds_up_exactly():
    pieces = split_hours(t(2026, 11, 30, 22, 30), t(2026, 12, 1, 1, 15))
    assert pieces == [(t(2026, 11, 30, 22), 1800.0), (t(2026, 11, 30, 23), 3600.0), (t(2026, 12, 1, 0), 3600.0),
                      (t(2026, 12, 1, 1), 900.0)]
    assert split_hours(t(2026, 1, 1), t(2026, 1, 1)) == []


def test_a_session_spanning_midnight_and_the_month_end_is_split_exactly():
    """2 cores, 4 GiB and 1 GPU from 23:00 on 30 Nov to 01:00 on 1 Dec; 7200 CPU seconds used evenly."""
    alloc = Allocated(cpu=2, mem=4 * GiB, accel=1)
    hours = spread(t(2026, 11, 30, 23), t(2026, 12, 1, 1), None,
                   Counters(cpu_seconds=7200, mem_bytes=GiB, disk_read=3, accel_util=50), alloc)
    nov, dec = hours[t(2026, 11, 30, 23)], hours[t(2026, 12, 1, 0)]
    assert nov["cpu_alloc"] == dec["cpu_alloc"] == 2 * 3600  # 2 core-hours on each side of midnight
    assert nov["accel_alloc"] == 3600 and nov["accel_used"] == 1800  # 1 GPU-hour held, half of it busy
    assert nov["cpu_used"] == dec["cpu_used"] == 3600
    assert nov["mem_used"] == GiB * 3600
    assert nov["disk_read"] + dec["disk_read"] == 3  # integers split without losing a byte
    assert sorted(hours) == [t(2026, 11, 30, 23), t(2026, 12, 1, 0)]  # nothing past the interval's end


def test_deltas_come_from_cumulative_counters_and_a_reset_counts_from_zero():
    prev = Counters(cpu_seconds=100, mem_bytes=GiB, net_rx=1000)
    hours = spread(t(2026, 1, 1, 10), t(2026, 1, 1, 10, 30), prev,
                   Counters(cpu_seconds=160, mem_bytes=3 * GiB, net_rx=1600), Allocated(cpu=1))
    h = hours[t(2026, 1, 1, 10)]
    assert h["cpu_used"] == 60 and h["net_rx"] == 600
    assert h["mem_used"] == 2 * GiB * 1800  # the mean of the two samples' memory, times the interval
    assert h["mem_peak"] == 3 * GiB
    reset = spread(t(2026, 1, 1, 10), t(2026, 1, 1, 10, 1), prev, Counters(cpu_seconds=5), Allocated())
    assert reset[t(2026, 1, 1, 10)]["cpu_used"] == 5


def test_allocated_slots_count_every_accelerator_slot_as_devices():
    a = allocated({"cpu": "2", "mem": "1073741824", "cuda.device": "1", "cuda.shares": "0.5"})
    assert a == Allocated(cpu=2.0, mem=float(GiB), accel=1.5)


def test_docker_stats_parse_for_cgroup_v1_and_v2():
    v1 = {"cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}},
          "memory_stats": {"usage": 300, "max_usage": 500, "stats": {"total_inactive_file": 100}},
          "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 7}, {"op": "Write", "value": 9},
                                                          {"op": "Total", "value": 16}]},
          "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}}}
    assert counters_from_stats(v1) == Counters(cpu_seconds=2.5, mem_bytes=200, mem_peak=500, disk_read=7,
                                               disk_write=9, net_rx=11, net_tx=22)
    v2 = {"cpu_stats": {"cpu_usage": {"total_usage": 10**9}}, "memory_stats": {"usage": 50, "stats": {"inactive_file": 10}},
          "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 4}]}}
    assert counters_from_stats(v2) == Counters(cpu_seconds=1.0, mem_bytes=40, mem_peak=40, disk_read=4)
    assert counters_from_stats({"cpu_stats": {}, "memory_stats": {}}) is None  # not running


NOW = t(2026, 12, 2, 4, 20)


@pytest.mark.parametrize("raw, field", [
    ({"by": "colour"}, "by"), ({"bucket": "week"}, "bucket"), ({"period": "30x"}, "period"),
    ({"period": "0d"}, "period"), ({"start": "yesterday"}, "start"), ({"end": "2026-13-01"}, "end"),
    ({"start": "2026-12-01", "end": "2026-11-01"}, "end"), ({"start": "2026-01-01", "period": "1d"}, "period"),
    ({"bucket": "hour", "period": "3000d"}, "period"), ({"bucket": "hour", "period": "500d"}, "bucket"),
    ({"colour": "red"}, "colour"),
    # dates at datetime's edges: a 400 naming the field, never an overflow (a 500)
    ({"end": "9999-12-31T23:30:00Z"}, "end"), ({"end": "0001-01-01"}, "end"),
    ({"end": "1970-02-15", "period": "3m"}, "period"), ({"start": "9999-12-31T23:30Z", "end": "9999-12-31T23:40Z"}, "start"),
])
def test_bad_query_parameters_name_the_field(raw, field):
    with pytest.raises(InvalidInput) as e:
        parse_query(raw, now=NOW)
    assert e.value.field == field and field in e.value.message


def test_query_periods_widen_to_whole_hours():
    q = parse_query({"period": "30d"}, now=NOW)
    assert (q.by, q.bucket, q.start, q.end) == ("group", "day", t(2026, 11, 2, 4), t(2026, 12, 2, 5))
    q = parse_query({"start": "2026-11-01", "end": "2026-12-01", "bucket": "month", "by": "user"}, now=NOW)
    assert (q.start, q.end, q.by) == (t(2026, 11, 1), t(2026, 12, 1), "user")
    assert parse_query({"period": "1m"}, now=t(2026, 3, 31, 12)).start == t(2026, 2, 28, 12)
    assert parse_query({"period": "24h"}, now=t(2026, 3, 31, 12)).end - timedelta(hours=24) == t(2026, 3, 30, 12)


def test_a_period_reads_whole_days_from_day_rows_and_its_edges_from_hour_rows():
    from backendai_hub.usage.models import UsageDay, UsageHour
    from backendai_hub.usage.query import pieces

    assert pieces(t(2026, 11, 2, 4), t(2026, 12, 2, 5), "day") == [
        (UsageDay, t(2026, 11, 3), t(2026, 12, 2)), (UsageHour, t(2026, 11, 2, 4), t(2026, 11, 3)),
        (UsageHour, t(2026, 12, 2), t(2026, 12, 2, 5))]
    assert pieces(t(2026, 11, 1), t(2026, 12, 1), "month") == [(UsageDay, t(2026, 11, 1), t(2026, 12, 1))]
    assert pieces(t(2026, 11, 1, 3), t(2026, 11, 1, 9), "day") == [(UsageHour, t(2026, 11, 1, 3), t(2026, 11, 1, 9))]
    assert pieces(t(2026, 11, 1), t(2026, 12, 1), "hour") == [(UsageHour, t(2026, 11, 1), t(2026, 12, 1))]


def test_a_chart_has_at_most_750_buckets():
    from backendai_hub.usage.query import check_chartable

    assert check_chartable(parse_query({"bucket": "hour", "period": "30d"}, now=NOW)).bucket == "hour"
    for raw in ({"bucket": "hour", "period": "60d"}, {"bucket": "day", "period": "1000d"}):
        with pytest.raises(InvalidInput) as e:
            check_chartable(parse_query(raw, now=NOW))
        assert e.value.field == "bucket" and "at most 750" in e.value.message


@pytest.mark.parametrize(("fn", "args", "field"), [
    ("_month", ("999912",), "month"), ("_month", ("000101",), "month"),
    ("_date", ("99991231", "end_date"), "end_date"), ("_date", ("00010101", "start_date"), "start_date"),
])
def test_backendai_usage_dates_at_the_edges_name_the_field(fn, args, field):
    from backendai_hub.service import backendai_usage

    with pytest.raises(InvalidInput) as e:
        getattr(backendai_usage, fn)(*args)
    assert e.value.field == field


def test_a_container_being_removed_has_no_figures_and_is_no_error(caplog):
    """While the engine removes a container, its stats answer is empty (docker-py raises the JSON
    error): the sample is skipped quietly, as for a container already gone (a stand-in engine API)."""
    import json

    import docker.errors

    class API:
        def __init__(self, error):
            self.error = error

        def stats(self, container_id, stream, one_shot):
            raise self.error

    class Client:
        def __init__(self, error):
            self.api = API(error)

    caplog.set_level("DEBUG", logger="backendai_hub.usage")
    for error in (json.JSONDecodeError("Expecting value", "", 0), docker.errors.NotFound("gone")):
        assert container_counters(Client(error), "c0ffee" * 10) is None
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
