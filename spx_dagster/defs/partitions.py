"""One Dagster partition per XNYS trading session, keyed ``YYYY-MM-DD``.

A daily cron (so a Friday's window closes at Saturday midnight and Friday is processable on
Saturday; a ``1-5`` weekday cron would hold Friday back until Monday) with the weekend excluded by
cron strings and weekday non-sessions (holidays, special closures such as 2012-10-29/30,
2018-12-05, 2025-01-09) excluded as dates taken from exchange_calendars, over the pinned calendar
range so that the definition's identity is stable.

``end_offset=1`` makes the current day's key exist while the day is running, so the 18:30 ET
schedule can target the session that closed that evening; whether a session has actually closed
is decided with ``core.calendar.latest_closed_session``, never by the existence of a key.
"""

from __future__ import annotations

import datetime as dt
import logging

import dagster as dg

from spx_dagster.core import calendar

log = logging.getLogger(__name__)
# The contract's default start (the Standard tier's first day of data), used when the config
# store cannot be read while the code location loads.
DEFAULT_START = dt.date(2016, 1, 4)

PARTITION_FORMAT = "%Y-%m-%d"
WEEKEND_EXCLUSIONS = ("0 0 * * 6", "0 0 * * 0")  # Saturday and Sunday windows


def trading_session_partitions(start: dt.date) -> dg.TimeWindowPartitionsDefinition:
    """The partitions definition over XNYS sessions from ``start`` (inclusive)."""
    holidays = [
        dt.datetime.combine(day, dt.time(), tzinfo=calendar.ET)
        for day in calendar.non_session_weekdays(start, calendar.CALENDAR_END)
    ]
    return dg.TimeWindowPartitionsDefinition(
        start=dt.datetime.combine(start, dt.time()),
        fmt=PARTITION_FORMAT,
        cron_schedule="0 0 * * *",
        timezone=calendar.EXCHANGE_TIMEZONE,
        end_offset=1,
        exclusions=[*WEEKEND_EXCLUSIONS, *holidays],
    )


def session_key(day: dt.date) -> str:
    return day.strftime(PARTITION_FORMAT)


def session_from_key(key: str) -> dt.date:
    return dt.datetime.strptime(key, PARTITION_FORMAT).date()


def configured_start_date() -> dt.date:
    """``processing.start_date`` from the user's settings (read once, when definitions load)."""
    try:
        from spx_dagster.core.config import load_settings

        return load_settings().processing.start_date
    except Exception as error:  # the code location must load even with a broken store
        log.warning(
            "could not read processing.start_date (%s); partitions start at %s. "
            "Run `spx-data config validate` to see what is wrong.",
            error,
            DEFAULT_START,
        )
        return DEFAULT_START


SESSIONS = trading_session_partitions(configured_start_date())
