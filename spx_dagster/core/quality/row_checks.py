"""Checks of one row at a time: ``quote_sanity`` and ``greeks_bounds``, vectorised.

Rows the terminal marks as unquoted (bid = ask = 0; greeks 0 and ``iv_error`` 100 on greeks
rows) are a known state, counted by the ``zero_quote_rate`` part of the score: they are not
checked here, so a wing with no market is not a wall of flags.

quote_sanity (on every dataset with bid and ask):
- ``crossed``: bid > ask.
- ``zero_bid``: bid = 0 while ask > 0 (normal in far wings; its own bit so it can be ignored).
- ``wide_spread``: ask − bid > max(floor, share × mid), the share by era and moneyness
  (``thresholds.SPREAD_ERAS``; all strikes count as wings without ``underlying_price``).
- ``below_intrinsic``: mid + half the spread < the intrinsic value discounted with the widest
  plausible carry: S·e^(−q·T) − K for calls, K·e^(−r·T) − S for puts (q, r: ``Thresholds``).

greeks_bounds (on rows with greeks):
- ``delta_bounds``: call delta outside [0, 1], put delta outside [−1, 0].
- ``negative_vega``: vega < 0.
- ``iv_bounds``: implied_vol outside (0, iv_max].
- ``iv_error``: |iv_error| > iv_error_max, on two-sided quotes (bid > 0).
- ``delta_moneyness``: a strike more than ``moneyness_sd`` standard deviations (IV·√T) in the
  money with |delta| < 0.5, or as far out of the money with |delta| > 0.5.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from spx_dagster.core.quality.families import Family, FamilyResult
from spx_dagster.core.quality.flags import Flag
from spx_dagster.core.quality.rows import calls, floats, has, worst_examples, years_to_expiry
from spx_dagster.core.quality.thresholds import Thresholds


def quote_sanity(
    table: pa.Table, dataset: str, session: dt.date, limits: Thresholds, flags: np.ndarray
) -> FamilyResult:
    """Set the quote bits in ``flags`` (in place); the family's figures on ``table``."""
    result = FamilyResult(Family.QUOTE_SANITY)
    if not has(table, "bid", "ask"):
        return result
    bid, ask = floats(table, "bid"), floats(table, "ask")
    quoted = (bid > 0) | (ask > 0)
    spread = ask - bid
    mid = 0.5 * (bid + ask)
    crossed = quoted & (bid > ask)
    zero_bid = quoted & (bid == 0) & (ask > 0)
    near_share, wing_share = limits.spread_shares(session)
    strike = floats(table, "strike")
    severity = np.zeros(len(bid))
    if has(table, "underlying_price"):
        spot = floats(table, "underlying_price")
        with np.errstate(divide="ignore", invalid="ignore"):
            near = np.abs(np.log(strike / spot)) <= limits.near_money
        share = np.where(near, near_share, wing_share)
        years = years_to_expiry(table)
        call = calls(table)
        bound = np.where(
            call,
            spot * np.exp(-limits.carry_dividend_max * years) - strike,
            strike * np.exp(-limits.carry_rate_max * years) - spot,
        )
        shortfall = bound - (mid + 0.5 * np.abs(spread))
        below = quoted & ~crossed & (bound > 0) & (shortfall > 0)
        severity = np.where(below, shortfall, severity)
    else:
        share = np.full(len(bid), wing_share)
        below = np.zeros(len(bid), dtype=bool)
    allowed = np.maximum(limits.spread_floor, share * mid)
    wide = quoted & ~crossed & (bid > 0) & (spread > allowed)
    with np.errstate(divide="ignore", invalid="ignore"):
        severity = np.where(
            wide, np.maximum(severity, spread / np.where(mid > 0, mid, 1)), severity
        )
    severity = np.where(crossed, np.maximum(severity, bid - ask), severity)
    for flag, mask in (
        (Flag.CROSSED, crossed),
        (Flag.ZERO_BID, zero_bid),
        (Flag.WIDE_SPREAD, wide),
        (Flag.BELOW_INTRINSIC, below),
    ):
        flags[mask] |= np.uint32(flag)
        result.counts[flag.name.lower()] = int(mask.sum())
    # zero_bid is informative (a far wing with no bid), not a fault of the data.
    faulty = crossed | wide | below
    result.checked = int(quoted.sum())
    result.violations = int(faulty.sum())
    rows = np.flatnonzero(faulty)

    def describe(positions: np.ndarray) -> list[str]:
        out = []
        for row in rows[positions]:
            what = []
            if crossed[row]:
                what.append(f"crossed: bid {bid[row]:.2f} > ask {ask[row]:.2f}")
            if wide[row]:
                what.append(f"spread {spread[row]:.2f} on mid {mid[row]:.2f}")
            if below[row]:
                what.append(f"mid {mid[row]:.2f} below intrinsic by {severity[row]:.2f}")
            out.append("; ".join(what))
        return out

    result.examples = worst_examples(table, dataset, rows, severity[rows], describe)
    return result


def greeks_bounds(
    table: pa.Table, dataset: str, limits: Thresholds, flags: np.ndarray
) -> FamilyResult:
    """Set the greeks bits in ``flags`` (in place); the family's figures on ``table``."""
    result = FamilyResult(Family.GREEKS_BOUNDS)
    if not has(table, "delta", "vega", "implied_vol", "iv_error"):
        return result
    delta, vega = floats(table, "delta"), floats(table, "vega")
    iv, iv_error = floats(table, "implied_vol"), floats(table, "iv_error")
    live = np.abs(iv_error) < 100  # 100: the terminal's mark of an unquoted row
    two_sided = live
    if has(table, "bid", "ask"):
        bid = floats(table, "bid")
        live &= (bid > 0) | (floats(table, "ask") > 0)
        two_sided = live & (bid > 0)
    call = calls(table)
    low, high = np.where(call, 0.0, -1.0), np.where(call, 1.0, 0.0)
    delta_out = live & ((delta < low - 1e-9) | (delta > high + 1e-9))
    negative_vega = live & (vega < 0)
    iv_out = live & ~((iv > 0) & (iv <= limits.iv_max))
    # A one-sided quote (no bid) gives the IV fit little to hold on to: only two-sided ones count.
    fit = two_sided & (np.abs(iv_error) > limits.iv_error_max)
    inconsistent = np.zeros(len(delta), dtype=bool)
    if has(table, "underlying_price", "strike"):
        spot, strike = floats(table, "underlying_price"), floats(table, "strike")
        with np.errstate(divide="ignore", invalid="ignore"):
            sd = np.log(spot / strike) / (iv * np.sqrt(years_to_expiry(table)))
        in_money = np.where(call, sd, -sd)  # > 0: in the money, in standard deviations
        size = np.abs(delta)
        usable = live & ~iv_out & ~delta_out
        inconsistent = usable & (
            ((in_money > limits.moneyness_sd) & (size < 0.5))
            | ((in_money < -limits.moneyness_sd) & (size > 0.5))
        )
    distance = np.maximum(np.maximum(low - delta, delta - high), 0)
    severity = (
        distance
        + np.where(negative_vega, -vega, 0)
        + np.where(iv_out, np.abs(iv), 0)
        + np.where(fit, np.abs(iv_error), 0)
        + np.where(inconsistent, 0.5, 0)
    )
    for flag, mask in (
        (Flag.DELTA_BOUNDS, delta_out),
        (Flag.NEGATIVE_VEGA, negative_vega),
        (Flag.IV_BOUNDS, iv_out),
        (Flag.IV_ERROR, fit),
        (Flag.DELTA_MONEYNESS, inconsistent),
    ):
        flags[mask] |= np.uint32(flag)
        result.counts[flag.name.lower()] = int(mask.sum())
    faulty = delta_out | negative_vega | iv_out | fit | inconsistent
    result.checked = int(live.sum())
    result.violations = int(faulty.sum())
    rows = np.flatnonzero(faulty)

    def describe(positions: np.ndarray) -> list[str]:
        return [
            f"delta {delta[r]:+.3f}, vega {vega[r]:.3f}, iv {iv[r]:.4f}, iv_error "
            f"{iv_error[r]:+.4f}"
            for r in rows[positions]
        ]

    result.examples = worst_examples(table, dataset, rows, severity[rows], describe)
    return result
