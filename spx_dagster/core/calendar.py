"""NYSE trading sessions (exchange_calendars XNYS) and date parsing with friendly errors.

The calendar is built once per process over a pinned range so that everything derived from it
(the Dagster partitions definition above all) has a stable identity. Sessions after
``CALENDAR_END`` are not known: raise the pin (and the partitions definition changes with it).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import itertools
import json
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from spx_dagster.core.thetadata.vendor import EOD_REPORT_TIME, EXCHANGE_TIMEZONE

CALENDAR_NAME = "XNYS"
CALENDAR_START = dt.date(2006, 1, 3)
CALENDAR_END = dt.date(2035, 12, 31)
ET = ZoneInfo(EXCHANGE_TIMEZONE)
REGULAR_CLOSE = dt.time(16, 0)


class DateError(ValueError):
    """A date the user gave that cannot be used; the message says why and what to use instead."""


class SessionNotClosed(DateError):
    """A session whose end-of-day report has not been generated yet: nothing may be published
    for it, whichever path (CLI, Dagster CLI, UI, backfill, sensor, schedule) asks."""


@functools.lru_cache(maxsize=1)
def _calendar():
    import exchange_calendars  # deferred: ~0.6 s to import, ~0.3 s to build

    return exchange_calendars.get_calendar(
        CALENDAR_NAME, start=CALENDAR_START.isoformat(), end=CALENDAR_END.isoformat()
    )


def _cache_path() -> Path:
    """The cached sessions of this exchange_calendars version and pinned range."""
    from importlib.metadata import version

    from spx_dagster.core.config.home import cache_dir

    name = f"{CALENDAR_NAME}-{version('exchange-calendars')}-{CALENDAR_START}-{CALENDAR_END}.json"
    return cache_dir() / name


def _build_facts() -> tuple[tuple[dt.date, ...], dict[dt.date, dt.time]]:
    cal = _calendar()
    sessions = tuple(ts.date() for ts in cal.sessions)
    early = {
        ts.date(): cal.closes[ts].tz_convert(EXCHANGE_TIMEZONE).time()
        for ts in cal.early_closes
        if CALENDAR_START <= ts.date() <= CALENDAR_END
    }
    return sessions, early


def _read_facts(path: Path) -> tuple[tuple[dt.date, ...], dict[dt.date, dt.time]] | None:
    try:
        data = json.loads(path.read_text())
        sessions = tuple(dt.date.fromordinal(n) for n in data["sessions"])
        early = {
            dt.date.fromisoformat(day): dt.time.fromisoformat(close)
            for day, close in data["early_closes"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    in_range = sessions and sessions[0] >= CALENDAR_START and sessions[-1] <= CALENDAR_END
    ordered = all(a < b for a, b in itertools.pairwise(sessions))
    return (sessions, early) if in_range and ordered else None


def _write_facts(path: Path, sessions: tuple[dt.date, ...], early: dict[dt.date, dt.time]) -> None:
    data = {
        "sessions": [day.toordinal() for day in sessions],
        "early_closes": {day.isoformat(): close.isoformat() for day, close in early.items()},
    }
    # A read-only home only costs the next process the build again.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(data))
        os.replace(temp, path)


@functools.lru_cache(maxsize=1)
def _facts() -> tuple[tuple[dt.date, ...], dict[dt.date, dt.time]]:
    """Sessions and early closes over the pinned range, from a cache file under
    ``$SPX_DATA_HOME/cache`` when one matches this exchange_calendars version; else built
    (importing and building the calendar costs ~0.9 s, a third of a read command) and cached."""
    path = _cache_path()
    facts = _read_facts(path)
    if facts is None:
        facts = _build_facts()
        _write_facts(path, *facts)
    return facts


def _session_list() -> tuple[dt.date, ...]:
    return _facts()[0]


@functools.lru_cache(maxsize=1)
def _session_set() -> frozenset[dt.date]:
    return frozenset(_session_list())


def _early_closes() -> dict[dt.date, dt.time]:
    return _facts()[1]


def calendar_version() -> str:
    """Version of exchange_calendars, recorded in every manifest."""
    from importlib.metadata import version

    return f"exchange-calendars {version('exchange-calendars')} {CALENDAR_NAME}"


def is_session(day: dt.date) -> bool:
    return day in _session_set()


def sessions_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Sessions from ``start`` to ``end``, both inclusive, oldest first."""
    sessions = _session_list()
    lo = bisect.bisect_left(sessions, start)
    hi = bisect.bisect_right(sessions, end)
    return list(sessions[lo:hi])


def previous_session(day: dt.date) -> dt.date | None:
    """The last session strictly before ``day``."""
    sessions = _session_list()
    i = bisect.bisect_left(sessions, day)
    return sessions[i - 1] if i > 0 else None


def next_session(day: dt.date) -> dt.date | None:
    """The first session strictly after ``day``."""
    sessions = _session_list()
    i = bisect.bisect_right(sessions, day)
    return sessions[i] if i < len(sessions) else None


def non_session_weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Weekdays in [start, end] on which the exchange is closed (holidays, special closures)."""
    sessions = _session_set()
    out = []
    day = start
    while day <= end:
        if day.weekday() < 5 and day not in sessions:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def session_close(day: dt.date) -> dt.time:
    """The equity close of ``day`` in ET: 16:00, or 13:00 on early-close days."""
    return _early_closes().get(day, REGULAR_CLOSE)


def intraday_end(day: dt.date, regular_end: dt.time) -> dt.time:
    """The last intraday stamp of ``day`` for a window ending at ``regular_end`` on a regular
    session: as much earlier on an early-close day as the close is (16:00 becomes 13:00, SPX's
    16:15 becomes 13:15), so that requests and checks of a half day agree on its window."""
    close = session_close(day)
    if close >= REGULAR_CLOSE:
        return regular_end
    shift = dt.datetime.combine(day, REGULAR_CLOSE) - dt.datetime.combine(day, close)
    return (dt.datetime.combine(day, regular_end) - shift).time()


def now_et() -> dt.datetime:
    return dt.datetime.now(tz=ET)


def latest_closed_session(now: dt.datetime | None = None) -> dt.date:
    """The most recent session whose end-of-day report (17:15 ET) has been generated by ``now``."""
    now = (now or now_et()).astimezone(ET)
    today = now.date()
    if is_session(today) and now.time() >= EOD_REPORT_TIME:
        return today
    prev = previous_session(today)
    if prev is None:
        raise DateError(f"no session before {today} in the pinned {CALENDAR_NAME} calendar")
    return prev


def open_session(now: dt.datetime | None = None) -> dt.date | None:
    """Today's session while it has not closed (its key exists in the Dagster UI, which lists the
    current day's partition so the evening schedule can target it), else None."""
    now = (now or now_et()).astimezone(ET)
    today = now.date()
    if is_session(today) and latest_closed_session(now) < today:
        return today
    return None


def latest_sessions(count: int, now: dt.datetime | None = None) -> list[dt.date]:
    """The ``count`` most recent closed sessions, oldest first."""
    last = latest_closed_session(now)
    sessions = _session_list()
    hi = bisect.bisect_right(sessions, last)
    return list(sessions[max(0, hi - count) : hi])


_DATE_FORMATS = (
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),
    (re.compile(r"^\d{8}$"), "%Y%m%d"),
    (re.compile(r"^\d{4}/\d{2}/\d{2}$"), "%Y/%m/%d"),
)


def parse_date(text: str) -> dt.date:
    """Parse ``YYYY-MM-DD`` (also ``YYYYMMDD``, ``YYYY/MM/DD``, ``today``, ``yesterday``)."""
    value = str(text).strip()
    lowered = value.lower()
    if lowered == "today":
        return now_et().date()
    if lowered == "yesterday":
        return now_et().date() - dt.timedelta(days=1)
    for pattern, fmt in _DATE_FORMATS:
        if pattern.match(value):
            try:
                return dt.datetime.strptime(value, fmt).date()
            except ValueError as exc:
                raise DateError(
                    f"{value!r} is not a real calendar date ({exc}); use YYYY-MM-DD, "
                    f"e.g. 2024-03-15"
                ) from None
    raise DateError(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2024-03-15")


def describe_non_session(day: dt.date) -> str:
    """Why ``day`` is not a session, naming the nearest sessions on either side."""
    if day.weekday() >= 5:
        why = f"{day} is a {day.strftime('%A')}"
    elif CALENDAR_START <= day <= CALENDAR_END:
        why = f"{day} is an NYSE holiday or closure ({day.strftime('%A')})"
    else:
        why = f"{day} is outside the pinned calendar {CALENDAR_START}..{CALENDAR_END}"
    prev, nxt = previous_session(day), next_session(day)
    near = " or ".join(str(d) for d in (prev, nxt) if d is not None)
    return f"{why}, not a trading session; nearest sessions: {near}"


def require_closed(day: dt.date, *, now: dt.datetime | None = None) -> dt.date:
    """Raise SessionNotClosed unless ``day``'s end-of-day report exists by ``now``; return the
    latest closed session."""
    last = latest_closed_session(now)
    if day > last:
        raise SessionNotClosed(
            f"{day} has not closed yet (its end-of-day report comes at 17:15 ET); "
            f"the latest closed session is {last}"
        )
    return last


def require_session(
    day: dt.date,
    *,
    earliest: dt.date | None = None,
    now: dt.datetime | None = None,
) -> dt.date:
    """Return ``day`` if it is a closed session not before ``earliest``; else raise DateError."""
    if not is_session(day):
        raise DateError(describe_non_session(day))
    last = require_closed(day, now=now)
    if earliest is not None and day < earliest:
        first = sessions_between(earliest, last)[:1]
        hint = f"; the first one available is {first[0]}" if first else ""
        raise DateError(
            f"{day} is before the earliest processable date {earliest} "
            f"(processing.start_date or the subscription tier's history){hint}"
        )
    return day


def parse_session(
    text: str, *, earliest: dt.date | None = None, now: dt.datetime | None = None
) -> dt.date:
    """Parse and check a session date in one step (see ``require_session``)."""
    return require_session(parse_date(text), earliest=earliest, now=now)


def parse_range(
    start_text: str, end_text: str, *, earliest: dt.date | None = None
) -> tuple[dt.date, dt.date]:
    """Parse an inclusive date range; reversed ranges are an error naming both ends."""
    start, end = parse_date(start_text), parse_date(end_text)
    if start > end:
        raise DateError(
            f"the range {start}..{end} is reversed: the start comes after the end; "
            f"did you mean {end} {start}?"
        )
    if earliest is not None and end < earliest:
        raise DateError(f"the range {start}..{end} ends before the earliest date {earliest}")
    return start, end
