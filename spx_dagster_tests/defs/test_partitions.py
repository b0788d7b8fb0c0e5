"""The trading-session partitions definition equals XNYS sessions."""

import datetime as dt

import pytest

from spx_dagster.core import calendar
from spx_dagster.defs.partitions import trading_session_partitions

ET = calendar.ET


@pytest.fixture(scope="module")
def partitions():
    return trading_session_partitions(dt.date(2012, 6, 1))


def test_keys_equal_xnys_sessions_from_2012_to_today(partitions):
    now = calendar.now_et()
    last = calendar.latest_closed_session(now)
    keys = partitions.get_partition_keys(current_time=now)
    expected = [d.isoformat() for d in calendar.sessions_between(dt.date(2012, 6, 1), last)]
    # end_offset=1: the running day's key may exist before its session has closed.
    closed_keys = [k for k in keys if k <= last.isoformat()]
    assert closed_keys == expected
    assert len(keys) - len(closed_keys) <= 1


@pytest.mark.parametrize(
    "day", ["2012-10-29", "2012-10-30", "2018-12-05", "2022-06-20", "2025-01-09"]
)
def test_special_closures_are_not_partitions(partitions, day):
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 1, 1, tzinfo=ET))
    assert day not in keys
    assert not partitions.has_partition_key(day)


def test_friday_is_processable_on_saturday(partitions):
    saturday = dt.datetime(2024, 3, 16, 9, 0, tzinfo=ET)
    keys = partitions.get_partition_keys(current_time=saturday)
    assert "2024-03-15" in keys
    assert "2024-03-16" not in keys and "2024-03-17" not in keys


def test_partitions_start_at_the_configured_start_date():
    p = trading_session_partitions(dt.date(2016, 1, 4))
    keys = p.get_partition_keys(current_time=dt.datetime(2016, 1, 9, tzinfo=ET))
    assert keys[:5] == ["2016-01-04", "2016-01-05", "2016-01-06", "2016-01-07", "2016-01-08"]
