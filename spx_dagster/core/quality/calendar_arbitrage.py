"""Calendar arbitrage across expirations: total implied variance must not fall with maturity.

At one minute and one forward moneyness k = ln(K / F), the total implied variance
w(k, T) = IV² · T of a later expiration must be at least that of an earlier one (else a
calendar spread at that moneyness is worth less than nothing). SPX and SPXW expirations are one
underlying and are compared together; two expirations with the same T are not compared.

The pipeline validates one part (one root and expiration) at a time, and a full-chain session
has ~75 of them, so the check works in two steps with bounded memory:

1. ``summarize_part(table, limits)`` on each part's greeks table, as it is validated: per minute,
   the out-of-the-money smile (calls at K ≥ F, puts below; IV from rows with ``iv_error`` < 100,
   a two-sided quote and vega > 0) interpolated linearly in k onto the grid k = j ·
   ``calendar_grid_step`` (|k| ≤ ``calendar_grid_max``, inside the quoted strikes only), each
   point with w, its tolerance and the two rows it was interpolated from. F is the minute's
   put-call parity forward (``parity.minute_forwards``), or ``underlying_price`` for a minute
   without one. A part is ~391 minutes × ≤ 41 points, a few hundred kB.
2. ``check_session(summaries, limits)`` once all parts of the session are summarised (a dict
   part key → summary; keys are the caller's and come back unchanged): for every minute and grid
   point, the expirations sorted by T, each adjacent pair must satisfy
   w_earlier − w_later ≤ tol_earlier + tol_later. The tolerance of a point is
   ((IV + ΔIV)² − IV²) · T, interpolated like w, with ΔIV = half-spread / vega (the IV a quote
   can move within its spread) + ``calendar_iv_tolerance`` (the IV fit's own noise).
   The LATER expiration's two rows at a violating point are flagged (``calendar``): a later
   expiration trading below an earlier one's variance is the common glitch (a stale or repriced
   far chain; a short one's IV spikes up with the index), and a pair cannot say more.
   It returns the session's ``FamilyResult`` (checked and violations count grid-point
   comparisons; ``counts["calendar"]`` the rows flagged; measure ``variance_excess``: Σ of
   w_earlier − w_later beyond the tolerance) and, per part key, the row indices of that part's
   table to set ``Flag.CALENDAR`` on.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import pyarrow as pa

from spx_dagster.core.quality.families import Family, FamilyResult
from spx_dagster.core.quality.groups import fold, key_codes, layout, lex_order, starts_of
from spx_dagster.core.quality.parity import MINUTE_KEYS, Pairs, minute_forwards
from spx_dagster.core.quality.rows import (
    calls,
    converted_once,
    floats,
    has,
    numpy_of,
    worst_examples,
    years_to_expiry,
)
from spx_dagster.core.quality.thresholds import Thresholds

SUMMARY_SCHEMA = pa.schema(
    [
        ("root", pa.string()),
        ("expiration", pa.date32()),
        ("timestamp", pa.timestamp("ms", tz="America/New_York")),
        ("years", pa.float64()),
        ("k", pa.float64()),
        ("w", pa.float64()),
        ("tolerance", pa.float64()),
        ("row_low", pa.int64()),
        ("row_high", pa.int64()),
        ("strike", pa.float64()),  # of row_high, for the examples
        ("right", pa.string()),
    ]
)
NEEDED = (*MINUTE_KEYS, "strike", "right", "bid", "ask", "implied_vol", "iv_error", "vega")


def _forwards(table: pa.Table, limits: Thresholds) -> np.ndarray:
    """Each row's minute forward: parity's, or ``underlying_price`` where a minute has none."""
    pairs = Pairs.of(table, limits)
    out = floats(table, "underlying_price") if has(table, "underlying_price") else None
    out = np.full(table.num_rows, np.nan) if out is None else out.copy()
    if pairs.n_groups == 0:
        return out
    _, _, forward = minute_forwards(pairs, limits)
    lay = layout(table)
    by_minute = np.full(lay.n_minutes, -1)
    by_minute[pairs.minute] = pairs.group  # the pairs' group of each minute that has pairs
    group = by_minute[lay.minute]
    found = group >= 0
    out[found] = forward[group[found]]
    return out


def summarize_part(table: pa.Table, limits: Thresholds | None = None) -> pa.Table:
    """The smile of each minute of ``table`` on the moneyness grid (see the module docstring)."""
    limits = limits or Thresholds()
    if not has(table, *NEEDED) or table.num_rows == 0:
        return SUMMARY_SCHEMA.empty_table()
    # Right after ``evaluate`` on the same part, the columns, orderings and parity forwards
    # are those it computed.
    with converted_once(table):
        return _summarize(table, limits)


def _in_minute_order(table: pa.Table, usable: np.ndarray) -> np.ndarray:
    """The usable rows sorted by (root, expiration, timestamp, strike), ties in row order."""
    lay = layout(table)
    rows = lay.by_minute[usable[lay.by_minute]]
    if not lay.contract_sorted:
        # by_minute puts a strike's call before its put; row order may not: sort such ties
        # (both out of the money only with per-row forwards) as rows come.
        minute, strike = lay.minute[rows], lay.strike[rows]
        if ((minute[1:] == minute[:-1]) & (strike[1:] == strike[:-1])).any():
            rows = np.flatnonzero(usable)
            rows = rows[lex_order(lay.minute[rows], lay.strike[rows])]
    return rows


def _summarize(table: pa.Table, limits: Thresholds) -> pa.Table:
    bid, ask = floats(table, "bid"), floats(table, "ask")
    iv, vega = floats(table, "implied_vol"), floats(table, "vega")
    strike = floats(table, "strike")
    forward = _forwards(table, limits)
    call = calls(table)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.log(strike / forward)
    out_of_money = np.where(call, k >= 0, k < 0)
    usable = (
        (np.abs(floats(table, "iv_error")) < 100)
        & (bid > 0)
        & (ask >= bid)
        & (vega > 0)
        & (iv > 0)
        & (iv <= limits.iv_max)
        & np.isfinite(k)
        & out_of_money
    )
    if usable.sum() < 2:
        return SUMMARY_SCHEMA.empty_table()
    # One forward per minute: strike order is k order.
    rows = _in_minute_order(table, usable)
    group = np.cumsum(starts_of(layout(table).minute[rows])) - 1
    n_groups = int(group[-1]) + 1
    years = years_to_expiry(table)[rows]
    kk = k[rows]
    w = iv[rows] ** 2 * years
    iv_slack = 0.5 * (ask[rows] - bid[rows]) / vega[rows] + limits.calendar_iv_tolerance
    tol = ((iv[rows] + iv_slack) ** 2 - iv[rows] ** 2) * years

    # Grid points inside each minute's quoted k range: j from ceil(k_min/step) to floor(k_max/step).
    step, edge = limits.calendar_grid_step, limits.calendar_grid_max
    first = np.flatnonzero(starts_of(group))
    last = np.concatenate((first[1:], [len(rows)])) - 1
    j_low = np.maximum(np.ceil(kk[first] / step - 1e-9), -np.floor(edge / step + 1e-9))
    j_high = np.minimum(np.floor(kk[last] / step + 1e-9), np.floor(edge / step + 1e-9))
    count = np.maximum(j_high - j_low + 1, 0).astype(np.int64)
    point_group = np.repeat(np.arange(n_groups), count)
    offset = np.arange(len(point_group)) - np.repeat(np.cumsum(count) - count, count)
    grid = (j_low[point_group] + offset) * step
    # The upper bracket: the first strike of the minute with k ≥ the grid point.
    scale = 4.0 * (np.abs(kk).max() + edge + 1.0)
    keyed = group * scale + kk
    high = np.searchsorted(keyed, point_group * scale + grid - 1e-12, side="left")
    high = np.minimum(high, last[point_group])
    low = np.maximum(high - 1, first[point_group])
    exact = np.abs(kk[high] - grid) < 1e-12
    low = np.where(exact, high, low)
    span = kk[high] - kk[low]
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(span > 0, (grid - kk[low]) / span, 1.0)
    point_w = w[low] + weight * (w[high] - w[low])
    point_tol = tol[low] + weight * (tol[high] - tol[low])
    picked = table.select(["root", "expiration", "timestamp", "right"]).take(pa.array(rows[high]))
    return pa.table(
        {
            "root": picked.column("root").cast(pa.string()),
            "expiration": picked.column("expiration"),
            "timestamp": picked.column("timestamp").cast(SUMMARY_SCHEMA.field("timestamp").type),
            "years": years[high],
            "k": np.round(grid, 9),
            "w": point_w,
            "tolerance": point_tol,
            "row_low": rows[low],
            "row_high": rows[high],
            "strike": strike[rows[high]],
            "right": picked.column("right").cast(pa.string()),
        },
        schema=SUMMARY_SCHEMA,
    )


def check_session(
    summaries: Mapping[Hashable, pa.Table], limits: Thresholds | None = None
) -> tuple[FamilyResult, dict[Hashable, np.ndarray]]:
    """Compare the parts' summaries (see the module docstring); rows to flag per part key."""
    result = FamilyResult(Family.CALENDAR_ARBITRAGE)
    keys = list(summaries)
    tables = [summaries[key] for key in keys]
    to_flag: dict[Hashable, np.ndarray] = {key: np.zeros(0, dtype=np.int64) for key in keys}
    if not tables or sum(t.num_rows for t in tables) == 0:
        return result, to_flag
    part = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
    every = pa.concat_tables(tables)
    k = floats(every, "k")
    grid = np.round(k / 1e-6).astype(np.int64)  # the grid points, exact as integers
    point = fold(key_codes(every, "timestamp"), grid)  # (minute, grid point), as one key
    years = floats(every, "years")
    order = np.lexsort((years, *reversed(point)))
    same = ~starts_of(*(key[order] for key in point))[1:]
    earlier, later = order[:-1][same], order[1:][same]
    apart = years[later] > years[earlier] + 1e-9
    earlier, later = earlier[apart], later[apart]
    w, tol = floats(every, "w"), floats(every, "tolerance")
    excess = (w[earlier] - w[later]) - (tol[earlier] + tol[later])
    broken = excess > 0
    result.checked = len(earlier)
    result.violations = int(broken.sum())
    bad = later[broken]
    row_low = numpy_of(every.column("row_low"))
    row_high = numpy_of(every.column("row_high"))
    flagged = 0
    for index, key in enumerate(keys):
        mine = bad[part[bad] == index]
        rows = np.unique(np.concatenate((row_low[mine], row_high[mine])))
        to_flag[key] = rows
        flagged += len(rows)
    result.counts = {"calendar": flagged}
    result.measures = {"variance_excess": float(excess[broken].sum())}
    shorter = every.select(["root", "expiration"]).take(pa.array(earlier[broken]))

    def describe(positions: np.ndarray) -> list[str]:
        out = []
        for p in positions:
            i, j = later[broken][p], earlier[broken][p]
            out.append(
                f"total variance {w[i]:.6f} at k {k[i]:+.3f} below {w[j]:.6f} of "
                f"{shorter.column('root')[int(p)].as_py()} "
                f"{shorter.column('expiration')[int(p)].as_py().isoformat()}"
            )
        return out

    result.examples = worst_examples(every, "greeks", bad, excess[broken], describe)
    return result, to_flag
