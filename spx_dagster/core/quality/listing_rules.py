"""Which SPX and SPXW expirations the exchange's listing rules promise on a session, by era.

Cboe's rules, as the coverage family expects them (sources: Cboe product notices for SPX Weeklys,
the Monday/Wednesday SPXW launches of 2016 and the Tuesday/Thursday launches of 2022):

- ``SPX`` (AM-settled): the third Friday of each month (on a holiday, the Thursday before; until
  February 2015 dated the OCC Saturday after it). It stops trading the session before its date,
  so it is expected only while it lies after the session.
- ``SPXW`` (PM-settled), trading on their date (0DTE included):
  - Fridays (on an exchange holiday, the session before: Good Friday moves it to Thursday);
  - Wednesdays from 2016-02-23, Mondays from 2016-08-15 (the listing dates of those series);
  - Tuesdays from 2022-04-18 and Thursdays from 2022-05-11: every weekday since.
  A Monday-to-Thursday expiration that falls on a holiday is not listed at all.

Weeklies are listed weeks ahead, so within the horizon (a week by default) every such
expiration must be in the vendor's listing; one missing there is a hole in the data source.
"""

from __future__ import annotations

import datetime as dt

from spx_dagster.core.calendar import CALENDAR_END, CALENDAR_START, is_session

FRIDAY = 4
SATURDAY_EXPIRATIONS_UNTIL = dt.date(2015, 2, 1)  # OCC dated monthly expirations a Saturday
# Weekday (0 = Monday) → the first session its SPXW series was listed on.
SPXW_WEEKDAY_LAUNCH: dict[int, dt.date] = {
    FRIDAY: dt.date(2005, 10, 28),
    2: dt.date(2016, 2, 23),
    0: dt.date(2016, 8, 15),
    1: dt.date(2022, 4, 18),
    3: dt.date(2022, 5, 11),
}


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(FRIDAY - first.weekday()) % 7 + 14)


def _spx_monthly(year: int, month: int) -> dt.date:
    friday = _third_friday(year, month)
    if friday < SATURDAY_EXPIRATIONS_UNTIL:
        return friday + dt.timedelta(days=1)
    return friday if _trading(friday) else friday - dt.timedelta(days=1)


def _trading(day: dt.date) -> bool:
    return CALENDAR_START <= day <= CALENDAR_END and is_session(day)


def _spxw_on(day: dt.date, session: dt.date) -> dt.date | None:
    """The SPXW expiration of ``day``'s weekday series, if the series was listed by ``session``
    (a Friday holiday moves the expiration to the session before)."""
    launch = SPXW_WEEKDAY_LAUNCH.get(day.weekday())
    if launch is None or session < launch:
        return None
    if _trading(day):
        return day
    if day.weekday() == FRIDAY:
        before = day - dt.timedelta(days=1)
        return before if _trading(before) else None
    return None


def expected_expirations(
    session: dt.date, roots: tuple[str, ...], horizon_days: int
) -> set[tuple[str, dt.date]]:
    """(root, expiration) pairs the rules promise on ``session`` up to ``horizon_days`` ahead."""
    expected: set[tuple[str, dt.date]] = set()
    last = session + dt.timedelta(days=max(horizon_days, 0))
    day = session
    while day <= last:
        if "SPXW" in roots:
            expiration = _spxw_on(day, session)
            if expiration is not None and expiration >= session:
                expected.add(("SPXW", expiration))
        day += dt.timedelta(days=1)
    if "SPX" in roots:
        for year, month in {(session.year, session.month), (last.year, last.month)}:
            monthly = _spx_monthly(year, month)
            if session < monthly <= last:
                expected.add(("SPX", monthly))
    return expected
