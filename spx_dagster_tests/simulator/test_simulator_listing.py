"""SPX/SPXW listing rules by era, strike ladders and the scale of a full chain."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from spx_dagster.core import calendar
from spx_dagster.simulator.listing import AM, CHAINS, PM, Listing
from spx_dagster.simulator.market import Market

TODAY = dt.date(2025, 6, 2)


@pytest.fixture(scope="module")
def full() -> Listing:
    return Listing(CHAINS["full"], Market(0), TODAY)


def spxw_dates(listing: Listing) -> set[dt.date]:
    return {e.date for e in listing.expirations("SPXW")}


@pytest.mark.parametrize(
    ("day", "listed"),
    [
        (dt.date(2019, 6, 4), False),  # a Tuesday before Tuesday SPXW existed
        (dt.date(2023, 6, 6), True),  # a Tuesday after April 2022
        (dt.date(2022, 4, 12), False),  # the Tuesday before the first one
        (dt.date(2022, 4, 19), True),  # the first Tuesday expiration
        (dt.date(2022, 5, 5), False),  # a Thursday before May 11, 2022
        (dt.date(2022, 5, 12), True),
        (dt.date(2015, 6, 10), False),  # a Wednesday before February 2016
        (dt.date(2016, 6, 8), True),
        (dt.date(2016, 3, 7), False),  # a Monday before August 2016
        (dt.date(2017, 3, 6), True),
        (dt.date(2013, 3, 8), True),  # Friday weeklies from the start of the data
        (dt.date(2015, 6, 30), True),  # a quarter end on a Tuesday, long before Tuesday dailies
        (dt.date(2019, 4, 19), False),  # Good Friday: no expiration on a holiday ...
        (dt.date(2019, 4, 18), True),  # ... the Thursday before instead
    ],
)
def test_spxw_expirations_by_era(full, day, listed):
    assert (day in spxw_dates(full)) is listed


def test_spxw_dailies_every_weekday_since_2022(full):
    days = [d for d in calendar.sessions_between(dt.date(2023, 1, 2), dt.date(2023, 3, 31))]
    assert set(days) <= spxw_dates(full)
    before = calendar.sessions_between(dt.date(2019, 1, 2), dt.date(2019, 3, 29))
    listed = [full.expiration("SPXW", d) for d in before if d in spxw_dates(full)]
    assert {e.date.weekday() for e in listed if "month_end" not in e.families} == {0, 2, 4}
    assert {e.date for e in listed if e.date.weekday() in (1, 3)} == {
        dt.date(2019, 1, 31),
        dt.date(2019, 2, 28),
    }  # month ends only


def test_spx_monthlies_are_am_settled_third_fridays(full):
    spx = {e.date: e for e in full.expirations("SPX")}
    for month in range(1, 13):
        first = dt.date(2024, month, 1)
        third_friday = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
        assert spx[third_friday].settlement == AM
    assert all(e.date.weekday() in (3, 4, 5) for e in spx.values())
    # OCC dated standard monthlies on the Saturday after until 2015 (like AAPL 2012-06-16).
    assert dt.date(2013, 3, 16) in spx and dt.date(2013, 3, 15) not in spx
    assert dt.date(2019, 4, 18) in spx  # Good Friday 2019 was the third Friday
    # AM contracts stop trading the session before their date; PM ones trade on it (0DTE).
    nov15 = spx[dt.date(2024, 11, 15)]
    assert nov15.listed_on(dt.date(2024, 11, 14)) and not nov15.listed_on(dt.date(2024, 11, 15))
    spxw = full.expiration("SPXW", dt.date(2024, 11, 15))
    assert spxw.settlement == PM and spxw.listed_on(dt.date(2024, 11, 15))


def test_leaps_and_quarterlies_are_listed_years_ahead(full):
    day = dt.date(2024, 11, 4)
    spx = [e.date for e in full.listed_on("SPX", day)]
    assert max(spx) >= dt.date(2029, 1, 1)  # December LEAPS ~5 years out
    spxw = [e.date for e in full.listed_on("SPXW", day)]
    assert dt.date(2025, 3, 31) in spxw  # quarter end
    assert dt.date(2025, 1, 31) in spxw  # month end


def test_full_chain_scale_like_thetadata_md(full):
    day = dt.date(2024, 11, 4)
    spxw, spx = full.listed_on("SPXW", day), full.listed_on("SPX", day)
    assert 40 <= len(spxw) <= 70 and 15 <= len(spx) <= 30
    contracts = sum(2 * len(full.strikes(e, day)) for e in spxw + spx)
    assert 15_000 <= contracts <= 30_000
    assert len(full.strikes(spxw[0], day)) >= 150  # several hundred near the money


def test_strikes_5_apart_near_the_money_wider_away(full):
    day = dt.date(2024, 11, 4)
    exp = full.listed_on("SPXW", day)[0]
    strikes = full.strikes(exp, day)
    level = full.market.day(day).open
    gaps = np.diff(strikes)
    near = np.abs(strikes[:-1] - level) < 100
    assert set(gaps[near]) == {5.0}
    assert {25.0, 50.0, 100.0} <= set(gaps[~near])
    assert np.all(strikes % 5 == 0) and strikes.min() < level * 0.8 < level * 1.1 < strikes.max()


def test_a_past_session_lists_only_strikes_that_existed_then(full):
    exp = full.expiration("SPX", dt.date(2024, 12, 20))
    early = full.strikes(exp, exp.listed)
    late = full.strikes(exp, dt.date(2024, 12, 19))
    assert set(early) < set(late) == set(full.strikes(exp))


def test_tiny_chain_is_small_and_consistent():
    tiny = Listing(CHAINS["tiny"], Market(0), TODAY)
    day = dt.date(2024, 11, 4)
    exps = tiny.listed_on("SPXW", day) + tiny.listed_on("SPX", day)
    assert 1 <= len(exps) <= 4
    assert all(len(tiny.strikes(e, day)) == 9 for e in exps)
    assert {e.date for e in tiny.expirations("SPXW")} <= {
        e.date for e in Listing(CHAINS["full"], Market(0), TODAY).expirations("SPXW")
    }


def test_listing_is_deterministic_and_seeded():
    day = dt.date(2024, 11, 4)
    a, b = Listing(CHAINS["full"], Market(7), TODAY), Listing(CHAINS["full"], Market(7), TODAY)
    c = Listing(CHAINS["full"], Market(8), TODAY)
    exp = a.listed_on("SPXW", day)[0]
    assert np.array_equal(a.strikes(exp, day), b.strikes(exp, day))
    assert Market(7).day(day).path.tobytes() == Market(7).day(day).path.tobytes()
    assert Market(7).day(day).open != Market(8).day(day).open
    assert [e.date for e in a.listed_on("SPXW", day)] == [e.date for e in c.listed_on("SPXW", day)]


@pytest.mark.parametrize(
    ("year", "low", "high"),
    [(2012, 1200, 1550), (2016, 1750, 2350), (2020, 2200, 3900), (2024, 4500, 6200)],
)
def test_index_levels_follow_rough_real_spx(year, low, high):
    market = Market(0)
    days = np.arange(dt.date(year, 1, 5).toordinal(), dt.date(year, 12, 20).toordinal(), 7)
    levels = market.levels(days)
    assert low <= levels.min() and levels.max() <= high
    path = market.day(dt.date(year, 6, 3)).path
    assert len(path) == 6 * 3600 + 45 * 60 + 1  # one per second, 09:30:00-16:15:00
    assert np.all(path[23400:] == path[23400])  # the index stops at 16:00
