"""Which SPX/SPXW expirations and strikes are listed on a session, by the real rules of each era.

Expiration families (dates approximate Cboe's launches; the simulator is realistic, not exact):

- ``SPX`` monthlies, AM-settled, third Friday (Thursday when that Friday is a holiday). Until
  2015-02 standard monthlies carried the Saturday after as their expiration date (OCC
  convention; ThetaData lists them that way, e.g. AAPL 2012-06-16). Listed 12 months ahead,
  quarter months 2 years, June/December 3 years, December LEAPS 5.5 years.
- ``SPXW`` PM-settled: Friday weeklies (Thursday on a Friday holiday), third-Friday PM contracts
  (12 months, December 3 years), end-of-month (from 2014) and quarter-end (from the start),
  Wednesdays from 2016-02-23, Mondays from 2016-08-15, Tuesdays from 2022-04-18 and Thursdays
  from 2022-05-11: every weekday since May 2022.

An SPX (AM) expiration stops trading the session before its date; an SPXW one trades on its date
(0DTE). Strikes: a ladder around the index level, 5 points apart near the money and 25/50/100
further out, re-centred at checkpoints through the expiration's life; a strike exists from the
checkpoint that added it, so a past session lists only the strikes that existed then.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spx_dagster.core import calendar
from spx_dagster.core.thetadata.vendor import (
    INTRADAY_END,
    INTRADAY_START,
    TIER_HISTORY_START,
    Tier,
)
from spx_dagster.simulator.market import Market

# ThetaData's option history begins with the Pro tier's depth.
DATA_START = TIER_HISTORY_START[Tier.PRO]
# Standard monthlies expired on the Saturday after the third Friday until OCC's change in 2015.
SATURDAY_EXPIRATIONS_UNTIL = dt.date(2015, 2, 1)
LISTING_HORIZON_YEARS = 6

AM, PM = "AM", "PM"
QUARTER_MONTHS = (3, 6, 9, 12)


# --------------------------------------------------------------------------------------------
# Date rules
# --------------------------------------------------------------------------------------------
def _months(first: dt.date, last: dt.date):
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _session_or_before(day: dt.date, *, max_back: int = 1) -> dt.date | None:
    """``day`` if it is a session, else the session up to ``max_back`` days before it."""
    for back in range(max_back + 1):
        candidate = day - dt.timedelta(days=back)
        if calendar.is_session(candidate):
            return candidate
    return None


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def third_fridays(first: dt.date, last: dt.date, *, saturday_era: bool = False) -> list[dt.date]:
    """Third Fridays (holiday: the Thursday before); optionally OCC Saturdays before 2015-02."""
    out = []
    for year, month in _months(first, last):
        friday = third_friday(year, month)
        if saturday_era and friday < SATURDAY_EXPIRATIONS_UNTIL:
            day: dt.date | None = friday + dt.timedelta(days=1)
        else:
            day = _session_or_before(friday)
        if day is not None and first <= day <= last:
            out.append(day)
    return out


def weekdays(first: dt.date, last: dt.date, weekday: int, *, holiday_back: int) -> list[dt.date]:
    """Every ``weekday`` (0 = Monday); on a holiday, the session up to ``holiday_back`` before."""
    day = first + dt.timedelta(days=(weekday - first.weekday()) % 7)
    out = []
    while day <= last:
        moved = _session_or_before(day, max_back=holiday_back)
        if moved is not None and first <= moved:
            out.append(moved)
        day += dt.timedelta(days=7)
    return out


def month_ends(first: dt.date, last: dt.date, months=None) -> list[dt.date]:
    """The last session of each month (of ``months`` only, when given)."""
    out = []
    for year, month in _months(first, last):
        if months is not None and month not in months:
            continue
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        day = _session_or_before(nxt - dt.timedelta(days=1), max_back=7)
        if day is not None and first <= day <= last:
            out.append(day)
    return out


# --------------------------------------------------------------------------------------------
# Families and chain specs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """One kind of expiration of one root.

    Attributes:
        name: Short name (``monthly``, ``friday``, ``monday``, ...).
        root: ``SPX`` or ``SPXW``.
        settlement: ``AM`` (stops trading the session before) or ``PM`` (trades on its date).
        dates: Expiration dates of the family in a window.
        lead_days: How long before its date an expiration is listed.
        launch: Nothing of this family is listed before this date.
    """

    name: str
    root: str
    settlement: str
    dates: Callable[[dt.date, dt.date], list[dt.date]]
    lead_days: Callable[[dt.date], int]
    launch: dt.date = dt.date(1990, 1, 1)


def _spx_monthly_lead(day: dt.date) -> int:
    month = day.month if day.weekday() != 5 else (day - dt.timedelta(days=1)).month
    if month == 12:
        return 2000
    if month == 6:
        return 1100
    if month in QUARTER_MONTHS:
        return 730
    return 365


def _spxw_third_friday_lead(day: dt.date) -> int:
    return 1100 if day.month == 12 and day.year >= 2019 else 365


def _weekly_lead(day: dt.date) -> int:
    return 42 if day >= dt.date(2016, 1, 1) else 35


def _const(days: int) -> Callable[[dt.date], int]:
    return lambda _day: days


FULL_FAMILIES: tuple[Family, ...] = (
    Family(
        "monthly",
        "SPX",
        AM,
        lambda a, b: third_fridays(a, b, saturday_era=True),
        _spx_monthly_lead,
    ),
    Family("friday", "SPXW", PM, lambda a, b: weekdays(a, b, 4, holiday_back=1), _weekly_lead),
    Family("third_friday", "SPXW", PM, third_fridays, _spxw_third_friday_lead),
    Family("quarter_end", "SPXW", PM, lambda a, b: month_ends(a, b, QUARTER_MONTHS), _const(730)),
    Family("month_end", "SPXW", PM, month_ends, _const(365), launch=dt.date(2014, 1, 6)),
    Family(
        "wednesday",
        "SPXW",
        PM,
        lambda a, b: weekdays(a, b, 2, holiday_back=0),
        _const(35),
        launch=dt.date(2016, 2, 23),
    ),
    Family(
        "monday",
        "SPXW",
        PM,
        lambda a, b: weekdays(a, b, 0, holiday_back=0),
        _const(35),
        launch=dt.date(2016, 8, 15),
    ),
    Family(
        "tuesday",
        "SPXW",
        PM,
        lambda a, b: weekdays(a, b, 1, holiday_back=0),
        _const(35),
        launch=dt.date(2022, 4, 18),
    ),
    Family(
        "thursday",
        "SPXW",
        PM,
        lambda a, b: weekdays(a, b, 3, holiday_back=0),
        _const(35),
        launch=dt.date(2022, 5, 11),
    ),
)
TINY_FAMILIES: tuple[Family, ...] = (
    Family("monthly", "SPX", AM, lambda a, b: third_fridays(a, b, saturday_era=True), _const(35)),
    Family("friday", "SPXW", PM, lambda a, b: weekdays(a, b, 4, holiday_back=1), _const(9)),
)


@dataclass(frozen=True)
class ChainSpec:
    """A named chain size: which families, how far ahead, which strike ladder."""

    name: str
    description: str
    families: tuple[Family, ...]
    strikes: str  # "full", "small" or "tiny"
    max_lead_days: int | None = None


CHAINS: dict[str, ChainSpec] = {
    c.name: c
    for c in (
        ChainSpec(
            "full",
            "the realistic chain: every family by era, strikes 5/25/50/100 apart "
            "(15k-30k contracts a day in 2024)",
            FULL_FAMILIES,
            "full",
        ),
        ChainSpec(
            "small",
            "every family by era but listed at most 21 days ahead, strikes within about 4%",
            FULL_FAMILIES,
            "small",
            max_lead_days=21,
        ),
        ChainSpec(
            "tiny",
            "SPXW Fridays listed 9 days ahead and SPX monthlies 35 days ahead, 9 strikes 25 "
            "apart: a few dozen contracts, for fast tests",
            TINY_FAMILIES,
            "tiny",
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Expirations
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expiration:
    """One listed expiration.

    Attributes:
        root: ``SPX`` or ``SPXW``.
        date: The expiration date as ThetaData lists it.
        listed: First day it is listed.
        settlement: ``AM`` or ``PM``.
        families: The families that produce this date (e.g. ``friday``, ``month_end``).
    """

    root: str
    date: dt.date
    listed: dt.date
    settlement: str
    families: tuple[str, ...]

    def listed_on(self, day: dt.date) -> bool:
        if self.settlement == AM:
            return self.listed <= day < self.date
        return self.listed <= day <= self.date

    @property
    def expires_at(self) -> dt.datetime:
        """When the contract settles (naive ET): 16:00 on its date, or 09:30 for AM ones."""
        if self.settlement == PM:
            return dt.datetime.combine(self.date, INTRADAY_END)
        day = self.date
        while day.weekday() >= 5:  # OCC Saturday: settled on the Friday morning
            day -= dt.timedelta(days=1)
        return dt.datetime.combine(day, INTRADAY_START)


def _expirations(spec: ChainSpec, root: str, first: dt.date, last: dt.date) -> list[Expiration]:
    by_date: dict[dt.date, list[tuple[dt.date, Family]]] = {}
    for family in spec.families:
        if family.root != root:
            continue
        for day in family.dates(first, last):
            lead = family.lead_days(day)
            if spec.max_lead_days is not None:
                lead = min(lead, spec.max_lead_days)
            listed = max(day - dt.timedelta(days=lead), family.launch)
            if listed > day:
                continue
            by_date.setdefault(day, []).append((listed, family))
    out = []
    for day in sorted(by_date):
        entries = by_date[day]
        listed = min(listed for listed, _ in entries)
        out.append(
            Expiration(
                root=root,
                date=day,
                listed=listed,
                settlement=entries[0][1].settlement,
                families=tuple(f.name for _, f in entries),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Strikes
# --------------------------------------------------------------------------------------------
def _grid(low: float, high: float, step: float) -> np.ndarray:
    start = np.ceil(max(low, step) / step) * step
    if high < start:
        return np.empty(0)
    return np.arange(start, high + step / 2, step)


def strike_ladder(style: str, level: float, years: float) -> np.ndarray:
    """Strikes listed around ``level`` for an expiration ``years`` away (ascending dollars)."""
    root_t = np.sqrt(max(years, 1.0 / 365.0))
    if style == "tiny":
        centre = round(level / 25.0) * 25.0
        return centre + 25.0 * np.arange(-4, 5)
    if style == "small":
        parts = [_grid(level * 0.985, level * 1.015, 5.0), _grid(level * 0.96, level * 1.04, 25.0)]
        return np.unique(np.concatenate(parts))
    a5 = 0.02 + 0.05 * root_t if years <= 0.5 else 0.0
    a25 = min(a5 + 0.03 + 0.06 * root_t, 0.3)
    down = min(0.15 + 0.4 * root_t, 0.9)
    up = min(0.06 + 0.25 * root_t, 1.2)
    parts = [
        _grid(level * (1 - a5), level * (1 + a5), 5.0) if a5 else np.empty(0),
        _grid(level * (1 - a25), level * (1 + a25), 25.0),
        _grid(level * (1 - (a25 + down) / 2), level * (1 + (a25 + up) / 2), 50.0),
        _grid(level * (1 - down), level * (1 + up), 100.0),
    ]
    return np.unique(np.concatenate(parts))


def _checkpoints(exp: Expiration, style: str) -> list[dt.date]:
    """Days on which strikes are added: the listing day, then periodically, densest at the end."""
    if style == "tiny":
        return [exp.listed]
    life = (exp.date - exp.listed).days
    step = 7 if life <= 120 else 30
    days = {exp.listed + dt.timedelta(days=d) for d in range(0, life + 1, step)}
    days.update(exp.date - dt.timedelta(days=d) for d in (14, 7, 2, 0) if d <= life)
    return sorted(days)


@dataclass(frozen=True)
class StrikeSet:
    """The strikes of one expiration and the day each was added (ascending strikes)."""

    strikes: np.ndarray  # float64 dollars
    added: np.ndarray  # int64 proleptic ordinals

    def on(self, day: dt.date) -> np.ndarray:
        return self.strikes[self.added <= day.toordinal()]


class Listing:
    """Expirations and strikes of one chain spec, as known on ``today``.

    Args:
        spec: The chain size.
        market: Levels the strikes are centred on.
        today: Expirations listed after this day do not exist yet.
    """

    def __init__(self, spec: ChainSpec, market: Market, today: dt.date) -> None:
        self.spec = spec
        self.market = market
        self.today = today
        last = min(
            today.replace(year=today.year + LISTING_HORIZON_YEARS, day=min(today.day, 28)),
            calendar.CALENDAR_END,
        )
        self._all: dict[str, list[Expiration]] = {}
        for root in sorted({f.root for f in spec.families}):
            every = _expirations(spec, root, DATA_START, last)
            self._all[root] = [e for e in every if e.listed <= today]
        self._by_date = {root: {e.date: e for e in exps} for root, exps in self._all.items()}
        self.strike_set = functools.lru_cache(maxsize=1024)(self._strike_set)

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(self._all)

    def expirations(self, root: str) -> list[Expiration]:
        """Every expiration of ``root`` listed by ``today`` (past ones included), by date."""
        return self._all.get(root, [])

    def expiration(self, root: str, day: dt.date) -> Expiration | None:
        return self._by_date.get(root, {}).get(day)

    def listed_on(self, root: str, day: dt.date) -> list[Expiration]:
        """Expirations of ``root`` trading on session ``day``, by date."""
        return [e for e in self.expirations(root) if e.listed_on(day)]

    def strikes(self, exp: Expiration, day: dt.date | None = None) -> np.ndarray:
        """Strikes of ``exp`` existing on ``day`` (default: ``today``)."""
        return self.strike_set(exp).on(day or self.today)

    def _strike_set(self, exp: Expiration) -> StrikeSet:
        style = self.spec.strikes
        checkpoints = [d for d in _checkpoints(exp, style) if d <= max(self.today, exp.listed)]
        ordinals = np.array([d.toordinal() for d in checkpoints], dtype=np.int64)
        levels = self.market.levels(ordinals)
        settle = exp.expires_at
        strikes, added = [], []
        for day, ordinal, level in zip(checkpoints, ordinals, levels, strict=True):
            years = max((settle - dt.datetime.combine(day, INTRADAY_START)).days, 0) / 365.0
            ladder = strike_ladder(style, float(level), years)
            strikes.append(ladder)
            added.append(np.full(len(ladder), ordinal, dtype=np.int64))
        all_strikes = np.concatenate(strikes)
        all_added = np.concatenate(added)
        order = np.lexsort((all_added, all_strikes))
        all_strikes, all_added = all_strikes[order], all_added[order]
        first = np.ones(len(all_strikes), dtype=bool)
        first[1:] = all_strikes[1:] != all_strikes[:-1]
        return StrikeSet(all_strikes[first], all_added[first])


@functools.lru_cache(maxsize=8)
def listing_for(chain: str, seed: int, today: dt.date) -> Listing:
    """A shared (read-only) listing per chain, seed and day: building one takes ~0.5 s."""
    return Listing(CHAINS[chain], Market(seed), today)
