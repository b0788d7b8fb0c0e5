"""Quotes that stopped moving while the index did, and index levels that disagree at a minute.

Per contract, in time order (rows on the greeks dataset: the check needs ``underlying_price``
and ``delta``, which the quote dataset lacks):

- ``stale_quote``: a run of bars with the same bid and ask (quoted: bid > 0 or ask > 0), started
  at t₀. A bar at t is stale when t − t₀ ≥ ``stale_minutes`` and the index has moved enough,
  since t₀, for the quote to have changed: |Δ₀|·(max S − min S over [t₀, t]) > ``stale_spreads``
  × (ask − bid), with Δ₀ the delta at t₀ (first-order change of the option's value; a far wing
  with a tiny delta may rightly sit on the same ticks for hours). The bars from that point on
  are flagged, the first ``stale_minutes`` of the run are not.
- ``underlying_mismatch``: per root, expiration and minute, a row whose ``underlying_price``
  differs from the minute's median by more than ``underlying_tolerance`` of it (every contract
  of one minute is priced off the same index level; one that is not carries a stale or foreign
  one).

Measure: ``underlying_gap``, the relative distances of the mismatched rows, summed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spx_dagster.core.quality.families import Family, FamilyResult
from spx_dagster.core.quality.flags import Flag
from spx_dagster.core.quality.groups import group_median, layout, running_range, starts_of
from spx_dagster.core.quality.rows import floats, has, worst_examples
from spx_dagster.core.quality.thresholds import Thresholds

CONTRACT_KEYS = ("root", "expiration", "strike", "right")
MINUTE_MS = 60_000


def _stale(table: pa.Table, limits: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Rows (positions in ``table``) of stale bars, and each one's minutes since the run began."""
    lay = layout(table)
    order, contract = lay.by_contract, lay.contract_starts

    def ordered(values: np.ndarray) -> np.ndarray:
        return values if lay.contract_sorted else values[order]

    at = ordered(lay.timestamp)
    bid, ask = ordered(floats(table, "bid")), ordered(floats(table, "ask"))
    quoted = (bid > 0) | (ask > 0)
    unchanged = np.zeros(len(order), dtype=bool)
    unchanged[1:] = (bid[1:] == bid[:-1]) & (ask[1:] == ask[:-1])
    run_start = contract | ~unchanged | ~quoted
    first = np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))
    elapsed = (at - at[first]) / MINUTE_MS
    # Only runs that last stale_minutes can hold a stale bar: the index's range over the others
    # is never read.
    run_first = np.flatnonzero(run_start)
    lasting = (np.maximum.reduceat(elapsed, run_first) >= limits.stale_minutes)[
        np.cumsum(run_start) - 1
    ]
    moved = running_range(ordered(floats(table, "underlying_price")), run_start, lasting)
    delta = np.abs(ordered(floats(table, "delta"))[first])
    stale = (
        quoted
        & (elapsed >= limits.stale_minutes)
        & (delta * moved > limits.stale_spreads * (ask - bid))
    )
    return order[stale], elapsed[stale]


def _mismatched(table: pa.Table, limits: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose underlying is off their minute's median, and by how much (relative)."""
    spot = floats(table, "underlying_price")
    lay = layout(table)
    by_minute = lay.minute_rows()
    rows = by_minute[np.isfinite(spot)[by_minute]]
    group = np.cumsum(starts_of(lay.minute[rows])) - 1
    n_groups = int(group[-1]) + 1 if len(group) else 0
    median = group_median(spot[rows], group, n_groups)[group]
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(spot[rows] - median) / median
    off = gap > limits.underlying_tolerance
    return rows[off], gap[off]


def staleness(table: pa.Table, dataset: str, limits: Thresholds, flags: np.ndarray) -> FamilyResult:
    """Set the staleness bits in ``flags`` (in place); the family's figures on ``table``."""
    result = FamilyResult(Family.STALENESS)
    if not has(table, *CONTRACT_KEYS, "timestamp", "bid", "ask", "underlying_price"):
        return result
    stale_rows, elapsed = np.zeros(0, dtype=np.int64), np.zeros(0)
    if has(table, "delta"):
        stale_rows, elapsed = _stale(table, limits)
    odd_rows, gap = _mismatched(table, limits)
    flags[stale_rows] |= np.uint32(Flag.STALE_QUOTE)
    flags[odd_rows] |= np.uint32(Flag.UNDERLYING_MISMATCH)
    result.counts = {"stale_quote": len(stale_rows), "underlying_mismatch": len(odd_rows)}
    result.measures = {"underlying_gap": float(gap.sum())}
    severity = np.zeros(len(flags))
    # A minute of staleness weighs like a tenth of a percent of index disagreement.
    severity[stale_rows] = elapsed / 1000.0
    np.maximum.at(severity, odd_rows, gap)
    rows = np.union1d(stale_rows, odd_rows)
    result.checked = int(np.isfinite(floats(table, "underlying_price")).sum())
    result.violations = len(rows)
    minutes = np.zeros(len(flags))
    minutes[stale_rows] = elapsed
    distance = np.zeros(len(flags))
    distance[odd_rows] = gap

    def describe(positions: np.ndarray) -> list[str]:
        out = []
        for row in rows[positions]:
            what = []
            if flags[row] & Flag.STALE_QUOTE:
                what.append(
                    f"bid/ask unchanged for {minutes[row]:.0f} minutes while the index moved"
                )
            if flags[row] & Flag.UNDERLYING_MISMATCH:
                what.append(f"underlying {distance[row]:.2%} off the minute's median")
            out.append("; ".join(what))
        return out

    result.examples = worst_examples(table, dataset, rows, severity[rows], describe)
    return result
