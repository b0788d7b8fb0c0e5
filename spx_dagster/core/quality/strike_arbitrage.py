"""Static arbitrage across strikes at one minute: vertical spreads and butterflies, vectorised.

Per root, expiration, right and minute, over the strikes quoted on both sides (bid > 0, not
crossed), in strike order, with h = half the spread and ``arbitrage_tick`` of slack:

- vertical: a call's mid must not rise with the strike, a put's must not fall:
  C(K₂) − C(K₁) ≤ h₁ + h₂ + tick and P(K₁) − P(K₂) ≤ h₁ + h₂ + tick. Both rows of a
  violating pair are flagged (the data cannot say which of the two is wrong).
- butterfly: price convex in strike. With w = (K₃ − K₂) / (K₃ − K₁), the butterfly
  w·V(K₁) + (1 − w)·V(K₃) − V(K₂) must be ≥ −(w·h₁ + h₂ + (1 − w)·h₃ + tick); the middle row
  of a violating triple is flagged.

``minimum_repair`` is the sum over violations of their excess beyond the tolerance: how many
dollars of mid, in all, must move for every pair and triple to pass (each counted on its own).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spx_dagster.core.quality.families import Family, FamilyResult
from spx_dagster.core.quality.flags import Flag
from spx_dagster.core.quality.groups import layout, small_ints, starts_of
from spx_dagster.core.quality.rows import calls, floats, has, two_sided, worst_examples
from spx_dagster.core.quality.thresholds import Thresholds


def _in_strike_order(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided rows sorted by (root, expiration, right, timestamp, strike), ties in row
    order, and each one's group id: equal for the rows of one (root, expiration, right,
    minute)."""
    lay = layout(table)
    rows = lay.by_minute[two_sided(table)[lay.by_minute]]
    # by_minute interleaves calls and puts; a stable sort by (root, expiration, right) alone
    # takes each minute's calls and puts apart without disturbing the strike order.
    side = (~lay.call[rows]).view(np.int8)
    if not lay.single_chain:
        side = 2 * (np.cumsum(starts_of(lay.root[rows], lay.expiration[rows])) - 1) + side
    rows = rows[np.argsort(small_ints(side), kind="stable")]
    group = np.cumsum(starts_of(lay.minute[rows], lay.call[rows])) - 1
    return rows, group


def strike_arbitrage(
    table: pa.Table, dataset: str, limits: Thresholds, flags: np.ndarray
) -> FamilyResult:
    """Set the arbitrage bits in ``flags`` (in place); the family's figures on ``table``."""
    result = FamilyResult(Family.STRIKE_ARBITRAGE)
    if not has(table, "bid", "ask", "timestamp", "strike"):
        return result
    eligible = int(two_sided(table).sum())
    if eligible < 2:
        result.checked = eligible
        return result
    rows, group = _in_strike_order(table)  # positions in ``table``, by group then strike
    bid, ask = floats(table, "bid"), floats(table, "ask")
    strike = floats(table, "strike")[rows]
    bid, ask = bid[rows], ask[rows]
    mid = 0.5 * (bid + ask)
    half = 0.5 * (ask - bid)
    call = calls(table)[rows]
    tick = limits.arbitrage_tick

    same_pair = group[1:] == group[:-1]
    step = mid[1:] - mid[:-1]
    rise = np.where(call[1:], step, -step)  # −(a − b) is b − a exactly in IEEE arithmetic
    vertical_excess = rise - (half[1:] + half[:-1] + tick)
    vertical = same_pair & (vertical_excess > 0)

    same_triple = group[2:] == group[:-2]
    # Triples that straddle two groups may repeat a strike: their w is not a number, and they
    # are left out by same_triple below.
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (strike[2:] - strike[1:-1]) / (strike[2:] - strike[:-2])
        fly = w * mid[:-2] + (1 - w) * mid[2:] - mid[1:-1]
        fly_tolerance = w * half[:-2] + half[1:-1] + (1 - w) * half[2:] + tick
        fly_excess = -fly - fly_tolerance
    butterfly = same_triple & (fly_excess > 0)

    flagged_vertical = np.zeros(len(rows), dtype=bool)
    flagged_vertical[:-1] |= vertical
    flagged_vertical[1:] |= vertical
    flagged_fly = np.zeros(len(rows), dtype=bool)
    flagged_fly[1:-1] |= butterfly
    flags[rows[flagged_vertical]] |= np.uint32(Flag.VERTICAL)
    flags[rows[flagged_fly]] |= np.uint32(Flag.BUTTERFLY)
    severity = np.zeros(len(rows))
    severity[1:] = np.where(vertical, vertical_excess, 0)
    severity[1:-1] = np.maximum(severity[1:-1], np.where(butterfly, fly_excess, 0))
    result.counts = {
        "vertical": int(vertical.sum()),
        "butterfly": int(butterfly.sum()),
    }
    result.measures = {
        "minimum_repair": float(vertical_excess[vertical].sum() + fly_excess[butterfly].sum())
    }
    faulty = flagged_vertical | flagged_fly
    result.checked = len(rows)
    result.violations = int(faulty.sum())
    positions = np.flatnonzero(faulty)

    def describe(picked: np.ndarray) -> list[str]:
        out = []
        for p in positions[picked]:
            kind = "butterfly" if flagged_fly[p] else "vertical"
            out.append(f"{kind}: mid {mid[p]:.2f}, {severity[p]:.2f} beyond the half-spreads")
        return out

    result.examples = worst_examples(table, dataset, rows[positions], severity[positions], describe)
    return result
