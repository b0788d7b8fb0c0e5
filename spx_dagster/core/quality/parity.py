"""Put-call parity per root, expiration and minute: the implied forward, its dispersion across
near-the-money strikes, and its distance from ``underlying_price`` (the implied carry).

Over the strikes where both the call and the put are quoted on both sides (bid > 0, not
crossed), with mids C_K, P_K, half-spreads h, T in years to 16:00 ET of the expiration and
g = e^(r·T) (r = ``parity_rate``):

- the forward of the minute is Cboe's (VIX white paper): F₀ = K* + g·(C* − P*) at the strike
  K* where |C − P| is smallest;
- each strike's forward is F_K = K + g·(C_K − P_K); over the strikes with |ln(K / F₀)| ≤
  ``parity_moneyness`` (at least ``parity_min_strikes`` of them) their median F̃ is the
  minute's forward. ``parity_forward``: |F_K − F̃| > g·(h_C + h_P) + g·h̃ + |C_K − P_K|·g·
  (e^(δ·T) − 1) + tick, where h̃ is the median of h_C + h_P over those strikes (F̃'s own
  uncertainty) and δ = ``parity_rate_slack`` (any rate in r ± δ fits). Both rows of the strike
  are flagged: parity cannot say whether the call or the put is off.
- ``carry_band``: the minute's forward (F̃, or F₀ with too few strikes) implies a carry
  b = ln(F / S) / T against S = the minute's median ``underlying_price``; F must lie within
  [S·e^(−q_max·T), S·e^(r_max·T)] (q_max, r_max: ``carry_dividend_max``, ``carry_rate_max``)
  widened by the half-spreads at K* and the tick. The call and put at K* are flagged (the
  pair that sets F₀).

Measures: ``forward_excess`` (dollars of F_K beyond the tolerance, summed), ``carry_excess``
(dollars of F outside the band, summed), and ``carry_log_basis`` / ``carry_years`` (Σ ln(F/S) and
Σ T over the minutes checked): the session's implied carry is their ratio, a T-weighted mean that
adds up across parts and stays finite at expiry.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spx_dagster.core.quality.families import Family, FamilyResult
from spx_dagster.core.quality.flags import Flag
from spx_dagster.core.quality.groups import group_first_minimum, group_median, layout, starts_of
from spx_dagster.core.quality.rows import (
    floats,
    has,
    once,
    two_sided,
    worst_examples,
    years_to_expiry,
)
from spx_dagster.core.quality.thresholds import Thresholds

MINUTE_KEYS = ("root", "expiration", "timestamp")


class Pairs:
    """The call-put pairs of a table (two-sided quotes at one strike and minute), sorted by
    minute then strike, with each pair's minute as a group id."""

    def __init__(self, table: pa.Table, limits: Thresholds) -> None:
        bid, ask = floats(table, "bid"), floats(table, "ask")
        lay = layout(table)
        # by_minute: each minute's strikes in order, a strike's call right before its put.
        rows = lay.by_minute[two_sided(table)[lay.by_minute]]
        minute, strike, call = lay.minute[rows], floats(table, "strike")[rows], lay.call[rows]
        same = (minute[1:] == minute[:-1]) & (strike[1:] == strike[:-1])
        first = np.flatnonzero(same & call[:-1] & ~call[1:])
        self.call_row, self.put_row = rows[first], rows[first + 1]
        self.strike = strike[first]
        self.minute = minute[first]  # the layout's minute id of each pair
        self.group = np.cumsum(starts_of(self.minute)) - 1
        self.n_groups = int(self.group[-1]) + 1 if len(first) else 0
        call_bid, call_ask = bid[self.call_row], ask[self.call_row]
        put_bid, put_ask = bid[self.put_row], ask[self.put_row]
        self.call_mid = 0.5 * (call_bid + call_ask)
        self.put_mid = 0.5 * (put_bid + put_ask)
        self.half = 0.5 * (call_ask - call_bid) + 0.5 * (put_ask - put_bid)
        self.years = years_to_expiry(table)[self.call_row]
        self.growth = np.exp(limits.parity_rate * self.years)
        self.forward = self.strike + self.growth * (self.call_mid - self.put_mid)
        self.derived: dict = {}  # what is computed from the pairs, once (``minute_forwards``)

    @classmethod
    def of(cls, table: pa.Table, limits: Thresholds) -> Pairs:
        """The table's pairs, once per ``rows.converted_once`` block (parity and the calendar
        summary both need them)."""
        return once(table, ("pairs", limits), lambda: cls(table, limits))

    def atm(self) -> np.ndarray:
        """Per minute (group id), the pair where |C − P| is smallest (Cboe's strike)."""
        return group_first_minimum(np.abs(self.call_mid - self.put_mid), self.group)


def minute_forwards(pairs: Pairs, limits: Thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per minute: Cboe's pair (index into ``pairs``), the near-the-money mask of the pairs and
    the minute's forward (the median of the near strikes', or Cboe's with too few of them)."""
    key = ("minute_forwards", limits)
    if key not in pairs.derived:
        pairs.derived[key] = _minute_forwards(pairs, limits)
    return pairs.derived[key]


def _minute_forwards(pairs: Pairs, limits: Thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    atm = pairs.atm()
    cboe = pairs.forward[atm]
    with np.errstate(divide="ignore", invalid="ignore"):
        near = np.abs(np.log(pairs.strike / cboe[pairs.group])) <= limits.parity_moneyness
    count = np.bincount(pairs.group[near], minlength=pairs.n_groups)
    median = np.full(pairs.n_groups, np.nan)
    if near.any():
        median = group_median(pairs.forward[near], pairs.group[near], pairs.n_groups)
    forward = np.where(count >= limits.parity_min_strikes, median, cboe)
    return atm, near, forward


def parity(table: pa.Table, dataset: str, limits: Thresholds, flags: np.ndarray) -> FamilyResult:
    """Set the parity bits in ``flags`` (in place); the family's figures on ``table``."""
    result = FamilyResult(Family.PARITY)
    if not has(table, *MINUTE_KEYS, "bid", "ask", "strike", "right"):
        return result
    pairs = Pairs.of(table, limits)
    if pairs.n_groups == 0:
        return result
    atm, near, forward = minute_forwards(pairs, limits)
    group = pairs.group
    count = np.bincount(group[near], minlength=pairs.n_groups)
    dispersed = count[group] >= limits.parity_min_strikes
    tick = limits.arbitrage_tick
    own_half = np.full(pairs.n_groups, np.nan)
    if near.any():
        own_half = group_median(pairs.half[near], group[near], pairs.n_groups)
    rate_slack = (
        np.abs(pairs.call_mid - pairs.put_mid)
        * pairs.growth
        * (np.exp(limits.parity_rate_slack * pairs.years) - 1)
    )
    tolerance = pairs.growth * (pairs.half + own_half[group]) + rate_slack + tick
    forward_excess = np.abs(pairs.forward - forward[group]) - tolerance
    off = near & dispersed & (forward_excess > 0)

    outside = np.zeros(pairs.n_groups, dtype=bool)
    carry_excess = np.zeros(pairs.n_groups)
    if has(table, "underlying_price"):
        # The minute's median underlying: one row's stale index is staleness's to flag.
        spot = group_median(
            floats(table, "underlying_price")[pairs.call_row], group, pairs.n_groups
        )
        years = pairs.years[atm]
        slack = pairs.growth[atm] * pairs.half[atm] + tick
        low = spot * np.exp(-limits.carry_dividend_max * years) - slack
        high = spot * np.exp(limits.carry_rate_max * years) + slack
        carry_excess = np.maximum(low - forward, forward - high)
        outside = carry_excess > 0
        valid = np.isfinite(spot) & (spot > 0) & np.isfinite(forward)
        outside &= valid
        result.measures["carry_log_basis"] = float(np.log(forward[valid] / spot[valid]).sum())
        result.measures["carry_years"] = float(years[valid].sum())
        result.measures["carry_excess"] = float(carry_excess[outside].sum())

    severity = np.zeros(len(flags))
    forward_rows = np.concatenate((pairs.call_row[off], pairs.put_row[off]))
    carry_rows = np.concatenate((pairs.call_row[atm[outside]], pairs.put_row[atm[outside]]))
    flags[forward_rows] |= np.uint32(Flag.PARITY_FORWARD)
    flags[carry_rows] |= np.uint32(Flag.CARRY_BAND)
    severity[forward_rows] = np.tile(forward_excess[off], 2)
    np.maximum.at(severity, carry_rows, np.tile(carry_excess[outside], 2))
    result.counts = {"parity_forward": len(forward_rows), "carry_band": len(carry_rows)}
    result.measures["forward_excess"] = float(forward_excess[off].sum())
    rows = np.union1d(forward_rows, carry_rows)
    result.checked = 2 * len(pairs.strike)
    result.violations = len(rows)
    implied = np.full(len(flags), np.nan)
    implied[pairs.call_row] = pairs.forward
    implied[pairs.put_row] = pairs.forward
    minute_forward = np.full(len(flags), np.nan)
    minute_forward[pairs.call_row] = forward[group]
    minute_forward[pairs.put_row] = forward[group]

    def describe(positions: np.ndarray) -> list[str]:
        out = []
        for row in rows[positions]:
            what = f"parity forward {implied[row]:.2f} vs the minute's {minute_forward[row]:.2f}"
            if flags[row] & Flag.CARRY_BAND:
                what += f"; outside the carry band of the underlying by {severity[row]:.2f}"
            out.append(what)
        return out

    result.examples = worst_examples(table, dataset, rows, severity[rows], describe)
    return result
