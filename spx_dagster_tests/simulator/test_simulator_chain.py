"""The simulated chain is priced like a market: Black-Scholes with skew, spreads, wings, quirks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from spx_dagster.core.thetadata.vendor import IV_ERROR_UNQUOTED, intervals_per_session
from spx_dagster.simulator import generate
from spx_dagster.simulator.listing import CHAINS, Listing
from spx_dagster.simulator.market import Market
from spx_dagster.simulator.pricing import black_scholes, norm_cdf
from spx_dagster.simulator.render import ContractGroup

DAY = dt.date(2024, 11, 4)
MINUTES = 34_200_000 + 60_000 * np.arange(intervals_per_session("1m"))


@pytest.fixture(scope="module")
def listing() -> Listing:
    return Listing(CHAINS["full"], Market(0), dt.date(2025, 6, 2))


def group_for(listing: Listing, root: str, index: int) -> ContractGroup:
    exp = listing.listed_on(root, DAY)[index]
    strikes = listing.strikes(exp, DAY)
    return ContractGroup(
        root,
        exp.date,
        np.repeat(strikes, 2),
        np.tile(np.array(["C", "P"]), len(strikes)),
        exp.expires_at,
    )


@pytest.fixture(scope="module")
def zero_dte(listing):
    group = group_for(listing, "SPXW", 0)
    session = generate.Session(DAY, listing.market.day(DAY), 0)
    rows = generate.intraday("greeks", session, group, slice(0, len(group)), MINUTES)
    return group, session, {k: v.reshape(len(group), len(MINUTES)) for k, v in rows.items()}


def test_one_row_per_contract_and_minute(zero_dte):
    group, session, rows = zero_dte
    assert rows["bid"].shape == (len(group), 391)
    assert np.array_equal(rows["timestamp"][0], MINUTES)
    assert np.array_equal(rows["underlying_price"][0], session.market.index_at(MINUTES // 1000))


def test_quotes_spreads_wings_and_quirks(zero_dte):
    _, _, rows = zero_dte
    bid, ask = rows["bid"], rows["ask"]
    quoted = ask > 0
    crossed = quoted & (bid > ask)
    assert 0 < crossed.sum() < 0.001 * bid.size  # rare crossed quotes, as in real data
    fine = quoted & ~crossed
    assert np.all(ask[fine] - bid[fine] >= 0.05 - 1e-9)
    assert np.all(
        np.isclose(np.round(bid * 20) / 20, bid) | np.isclose(np.round(bid * 10) / 10, bid)
    )
    zero_bid = quoted & (bid == 0)
    assert zero_bid.sum() > 0  # far wings bid nothing
    unquoted = ~quoted
    assert unquoted.sum() > 0
    assert np.all(rows["iv_error"][unquoted] == IV_ERROR_UNQUOTED)
    assert np.all(rows["delta"][unquoted] == 0) and np.all(bid[unquoted] == 0)
    assert np.all(np.abs(rows["iv_error"][quoted]) < 1) and (rows["iv_error"][quoted] < 0).any()


def test_greeks_have_the_right_signs(zero_dte):
    group, _, rows = zero_dte
    calls, puts = group.is_call, ~group.is_call
    assert np.all((rows["delta"][calls] >= 0) & (rows["delta"][calls] <= 1))
    assert np.all((rows["delta"][puts] <= 0) & (rows["delta"][puts] >= -1))
    assert np.all(rows["vega"] >= 0) and np.all(rows["implied_vol"] > 0)


def test_a_put_skew(listing):
    group = group_for(listing, "SPX", 1)  # about six weeks out
    session = generate.Session(DAY, listing.market.day(DAY), 0)
    priced = generate.price(session, group, slice(0, len(group)), np.array([43_200]))
    vol, strike = priced.vol[:, 0], group.strikes
    spot = session.market.index_at(np.array([43_200]))[0]
    atm = vol[np.argmin(np.abs(strike - spot))]
    assert vol[np.argmin(np.abs(strike - 0.9 * spot))] > atm * 1.1
    assert vol[np.argmin(np.abs(strike - 1.05 * spot))] < atm


def test_prices_fall_with_strike_for_calls_and_rise_for_puts(listing):
    group = group_for(listing, "SPXW", 5)
    session = generate.Session(DAY, listing.market.day(DAY), 0)
    price = generate.price(session, group, slice(0, len(group)), np.array([40_000])).greeks["price"]
    assert np.all(np.diff(price[group.is_call, 0]) <= 1e-9)
    assert np.all(np.diff(price[~group.is_call, 0]) >= -1e-9)


def test_black_scholes_against_textbook_values():
    # Hull's example: S=42, K=40, r=10%, sigma=20%, T=0.5 -> call 4.76, put 0.81.
    out = black_scholes(42.0, 40.0, 0.5, 0.1, 0.0, 0.2, np.array([True, False]))
    assert np.allclose(out["price"], [4.76, 0.81], atol=0.005)
    assert np.isclose(norm_cdf(np.array([1.959964]))[0], 0.975, atol=1e-7)
    parity = out["price"][0] - out["price"][1] - (42.0 - 40.0 * np.exp(-0.05))
    assert abs(parity) < 1e-6


def test_end_of_day_rows(listing):
    group = group_for(listing, "SPXW", 2)
    session = generate.Session(DAY, listing.market.day(DAY), 0)
    eod = generate.end_of_day("eod", session, group, slice(0, len(group)))
    traded = eod["volume"] > 0
    assert traded.any() and (~traded).any()
    assert np.all(eod["open"][~traded] == 0) and np.all(eod["close"][~traded] == 0)
    assert np.all(eod["high"][traded] >= np.maximum(eod["open"], eod["close"])[traded])
    assert np.all(eod["low"][traded] <= np.minimum(eod["open"], eod["close"])[traded])
    assert np.all(eod["created"] >= 17 * 3600_000 + 15 * 60_000)
    oi = generate.end_of_day("open_interest", session, group, slice(0, len(group)))
    assert np.all(oi["open_interest"] >= 0) and np.all(oi["timestamp"] // 60_000 == 6 * 60 + 30)
