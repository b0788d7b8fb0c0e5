"""XNYS sessions and the friendly date errors the CLI shows."""

import datetime as dt

import pytest

from spx_dagster.core import calendar
from spx_dagster.core.calendar import DateError

ET = calendar.ET


@pytest.mark.parametrize(
    "day",
    ["2012-10-29", "2012-10-30", "2018-12-05", "2022-06-20", "2025-01-09", "2024-12-25"],
)
def test_special_closures_and_holidays_are_not_sessions(day):
    assert not calendar.is_session(dt.date.fromisoformat(day))


def test_sessions_between_is_inclusive_and_skips_closures():
    days = calendar.sessions_between(dt.date(2012, 10, 26), dt.date(2012, 11, 1))
    assert days == [dt.date(2012, 10, 26), dt.date(2012, 10, 31), dt.date(2012, 11, 1)]


def test_weekend_error_names_the_nearest_sessions():
    with pytest.raises(DateError) as err:
        calendar.parse_session("2024-03-16", now=dt.datetime(2024, 6, 1, tzinfo=ET))
    message = str(err.value)
    assert "Saturday" in message
    assert "2024-03-15" in message and "2024-03-18" in message


def test_holiday_error_names_the_nearest_sessions():
    with pytest.raises(DateError) as err:
        calendar.parse_session("2025-01-09", now=dt.datetime(2025, 6, 1, tzinfo=ET))
    assert "holiday" in str(err.value)
    assert "2025-01-08" in str(err.value) and "2025-01-10" in str(err.value)


def test_future_and_unclosed_sessions_are_rejected():
    friday_afternoon = dt.datetime(2024, 3, 15, 16, 30, tzinfo=ET)
    with pytest.raises(DateError, match="has not closed yet"):
        calendar.parse_session("2024-03-15", now=friday_afternoon)
    evening = dt.datetime(2024, 3, 15, 17, 20, tzinfo=ET)
    assert calendar.parse_session("2024-03-15", now=evening) == dt.date(2024, 3, 15)


def test_before_the_earliest_date_names_the_first_available_session():
    with pytest.raises(DateError, match="2016-01-04"):
        calendar.parse_session(
            "2015-06-01", earliest=dt.date(2016, 1, 1), now=dt.datetime(2024, 1, 2, tzinfo=ET)
        )


@pytest.mark.parametrize("text", ["2024-02-30", "15/03/2024", "tomorrowish", ""])
def test_malformed_dates_say_what_format_to_use(text):
    with pytest.raises(DateError, match="YYYY-MM-DD"):
        calendar.parse_date(text)


def test_alternative_formats_parse():
    assert calendar.parse_date("20240315") == dt.date(2024, 3, 15)
    assert calendar.parse_date(" 2024/03/15 ") == dt.date(2024, 3, 15)


def test_reversed_range_is_an_error_that_suggests_the_fix():
    with pytest.raises(DateError, match="did you mean 2024-03-01 2024-03-15"):
        calendar.parse_range("2024-03-15", "2024-03-01")


def test_latest_closed_session_respects_the_eod_report_time():
    monday_morning = dt.datetime(2024, 3, 18, 9, 0, tzinfo=ET)
    assert calendar.latest_closed_session(monday_morning) == dt.date(2024, 3, 15)
    monday_evening = dt.datetime(2024, 3, 18, 17, 16, tzinfo=ET)
    assert calendar.latest_closed_session(monday_evening) == dt.date(2024, 3, 18)
    assert calendar.latest_sessions(3, monday_evening) == [
        dt.date(2024, 3, 14),
        dt.date(2024, 3, 15),
        dt.date(2024, 3, 18),
    ]


def test_early_close_days_close_at_one():
    assert calendar.session_close(dt.date(2024, 11, 29)) == dt.time(13, 0)
    assert calendar.session_close(dt.date(2024, 11, 27)) == dt.time(16, 0)


def _facts_in_a_process(home, code: str) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "SPX_DATA_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


FACTS = (
    "import sys, datetime as dt; from spx_dagster.core import calendar as c;"
    "s = c.sessions_between(dt.date(2006, 1, 1), dt.date(2035, 12, 31));"
    "print(len(s), s[0], s[-1], c.session_close(dt.date(2024, 11, 29)),"
    " 'exchange_calendars' in sys.modules)"
)


def test_the_sessions_are_cached_for_the_next_process_and_equal_the_built_ones(tmp_path):
    built = _facts_in_a_process(tmp_path, FACTS).split()
    (cached_file,) = (tmp_path / "cache").glob("XNYS-*.json")
    cached = _facts_in_a_process(tmp_path, FACTS).split()
    assert built[-1] == "True" and cached[-1] == "False"  # the second never imported it
    assert built[:-1] == cached[:-1]
    assert cached[1:4] == ["2006-01-03", "2035-12-31", "13:00:00"]
    assert int(cached[0]) == len(
        calendar.sessions_between(dt.date(2006, 1, 1), dt.date(2036, 1, 1))
    )
    assert cached_file.stat().st_size > 1000


def test_a_damaged_cache_is_rebuilt(tmp_path):
    _facts_in_a_process(tmp_path, FACTS)
    (cached_file,) = (tmp_path / "cache").glob("XNYS-*.json")
    good = _facts_in_a_process(tmp_path, FACTS)
    for damage in ('{"sessions": [3, 2, 1], "early_closes": {}}', "not json", ""):
        cached_file.write_text(damage)
        again = _facts_in_a_process(tmp_path, FACTS)
        assert again.split()[:-1] == good.split()[:-1] and again.endswith("True")
