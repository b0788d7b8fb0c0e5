"""The daily schedule targets every session exactly once, only after its EOD report."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from spx_dagster.core import calendar
from spx_dagster.definitions import defs
from spx_dagster.defs.constants import TRIGGER_TAG
from spx_dagster.defs.partitions import SESSIONS
from spx_dagster.defs.schedules import DAILY_CRON, daily_session_schedule

ET = calendar.ET


@pytest.fixture(scope="module")
def repository():
    return defs.get_repository_def()


def tick(repository, when: dt.datetime):
    context = dg.build_schedule_context(repository_def=repository, scheduled_execution_time=when)
    return daily_session_schedule.evaluate_tick(context)


def at_1830(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(18, 30), tzinfo=ET)


def targets(result) -> list[str]:
    return [request.partition_key for request in result.run_requests or []]


def test_friday_evening_targets_friday(repository):
    friday = dt.date(2024, 3, 15)
    result = tick(repository, at_1830(friday))
    assert targets(result) == ["2024-03-15"]
    (request,) = result.run_requests
    assert request.run_key == "daily-2024-03-15"
    assert request.tags[TRIGGER_TAG] == "schedule"
    # The key exists when the schedule fires (end_offset=1 keeps the running day's key).
    assert "2024-03-15" in SESSIONS.get_partition_keys(current_time=at_1830(friday))


def test_saturday_has_no_tick_and_skips_if_evaluated(repository):
    saturday = dt.date(2024, 3, 16)
    ticks = cron_string_iterator(at_1830(saturday).timestamp() - 1, DAILY_CRON, "America/New_York")
    assert next(ticks).date() == dt.date(2024, 3, 18)  # the next tick is Monday's
    result = tick(repository, at_1830(saturday))
    assert targets(result) == []
    assert "Saturday" in result.skip_message


@pytest.mark.parametrize("holiday", [dt.date(2024, 7, 4), dt.date(2024, 12, 25)])
def test_a_holiday_skips(repository, holiday):
    result = tick(repository, at_1830(holiday))
    assert targets(result) == []
    assert "holiday" in result.skip_message and str(holiday) in result.skip_message


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2024, 7, 5),  # after Independence Day
        dt.date(2024, 11, 29),  # after Thanksgiving, an early close at 13:00
        dt.date(2025, 1, 10),  # after the national day of mourning on 2025-01-09
    ],
)
def test_the_day_after_a_holiday_targets_that_day(repository, day):
    assert targets(tick(repository, at_1830(day))) == [day.isoformat()]


def test_a_session_is_not_targeted_before_its_eod_report(repository):
    before = dt.datetime(2024, 3, 15, 17, 0, tzinfo=ET)
    result = tick(repository, before)
    assert targets(result) == []
    assert "has not closed" in result.skip_message


def test_weeks_of_ticks_target_every_session_exactly_once(repository):
    """Ticks from late October to mid January: a DST change, Thanksgiving, Christmas, New Year
    and the 2025-01-09 closure. Each session once, in order, and nothing else."""
    start, end = dt.date(2024, 10, 28), dt.date(2025, 1, 17)
    fired: list[str] = []
    for when in cron_string_iterator(
        at_1830(start).timestamp() - 1, DAILY_CRON, "America/New_York"
    ):
        if when.date() > end:
            break
        assert when.astimezone(ET).time() == dt.time(18, 30)
        fired.extend(targets(tick(repository, when)))
    expected = [d.isoformat() for d in calendar.sessions_between(start, end)]
    assert fired == expected
    assert max(Counter(fired).values()) == 1
    assert "2024-11-28" not in fired and "2025-01-09" not in fired
