"""``reconciliation``: do the datasets of one session tell one story?

Each validated part leaves a small summary (one row per contract, ``summarize``); once the whole
session is validated, ``reconcile`` compares them:

- every EOD contract (``eod``, ``greeks_eod``) has intraday bars (``greeks``, else ``quote``):
  an EOD row without them is flagged ``no_intraday``; an intraday contract without an EOD row
  is counted (``intraday_without_eod``);
- EOD bid and ask lie within a tolerance of the last intraday bar's: the wider of the two
  spreads, plus ``arbitrage_tick``, plus what |delta| times an ``eod_index_move`` move of the index
  is worth (EOD quotes are taken up to 16:15, the last bar at the window's end); and a traded
  contract's close lies within the day's quotes (lowest bid to highest ask, widened by the
  last bar's spread, the tick slack and the index move: the close trades between the minute
  bars). Either failing flags the EOD row ``eod_mismatch``;
- open interest is never negative (counted; open interest has no flags). Open interest of a
  contract without intraday bars is normal (an AM expiration settling that morning) and only
  counted (``oi_without_intraday``).

Score: 1 − violations / checked, over EOD rows, intraday contracts without EOD and OI rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.quality.families import EXAMPLES_PER_FAMILY, Example, Family, FamilyResult
from spx_dagster.core.quality.flags import Flag
from spx_dagster.core.quality.rows import floats, has, worst_examples
from spx_dagster.core.quality.thresholds import Thresholds

KEYS = ("root", "expiration", "strike", "right")
INTRADAY_SOURCES = ("greeks", "quote")  # the first present is the session's intraday record
EOD_DATASETS = ("eod", "greeks_eod")
OPEN_INTEREST = "open_interest"
DATASETS = (*INTRADAY_SOURCES, *EOD_DATASETS, OPEN_INTEREST)
ROW = "row"  # an EOD summary's row number in its validated part


def _per_contract(group: np.ndarray, values: np.ndarray, reduce: np.ufunc, empty: float):
    out = np.full(int(group.max()) + 1, empty)
    reduce.at(out, group, values)
    return out


def summarize(table: pa.Table, dataset: str, group: np.ndarray) -> pa.Table | None:
    """The part's summary for ``reconcile`` (None for a dataset it does not compare).

    ``group`` numbers each row's contract (−1: no full key); intraday rows of a contract come
    in time order (validation rejects the others), so its last row is its last bar.
    """
    if dataset not in DATASETS or table.num_rows == 0:
        return None
    known = np.flatnonzero(group >= 0)
    if known.size == 0:
        return None
    g = group[known]
    if dataset in INTRADAY_SOURCES:
        last = _per_contract(g, known, np.maximum, -1).astype(np.int64)
        bid, ask = floats(table, "bid")[known], floats(table, "ask")[known]
        low_bid = _per_contract(g, np.where(bid > 0, bid, np.inf), np.minimum, np.inf)
        high_ask = _per_contract(g, np.where(ask > 0, ask, -np.inf), np.maximum, -np.inf)
        present = last >= 0
        columns = [*KEYS, "bid", "ask", "timestamp"]
        columns += [c for c in ("delta", "underlying_price") if c in table.column_names]
        summary = table.select(columns).take(pa.array(last[present]))
        return summary.append_column("low_bid", pa.array(low_bid[present])).append_column(
            "high_ask", pa.array(high_ask[present])
        )
    if dataset == OPEN_INTEREST:
        return table.select([*KEYS, "open_interest"]).take(pa.array(known))
    columns = [*KEYS, *(c for c in ("bid", "ask", "close", "volume", "delta") if has(table, c))]
    return table.select(columns).take(pa.array(known)).append_column(ROW, pa.array(known))


def _concat(parts: list[tuple[Hashable, pa.Table]]) -> tuple[pa.Table | None, list[Hashable]]:
    """The summaries as one table with a ``part`` number column, and the parts' keys."""
    if not parts:
        return None, []
    tables = [
        t.append_column("part", pa.array(np.full(t.num_rows, i, dtype=np.int64)))
        for i, (_, t) in enumerate(parts)
    ]
    return pa.concat_tables(tables, promote_options="permissive"), [key for key, _ in parts]


def _num(table: pa.Table, name: str) -> np.ndarray:
    """``rows.floats`` of a column the table may lack (then all NaN)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return floats(table, name)


def reconcile(
    summaries: Mapping[tuple[str, Hashable], pa.Table], limits: Thresholds, session: dt.date
) -> tuple[FamilyResult, dict[tuple[str, Hashable], np.ndarray]]:
    """The family's result and, per (EOD dataset, part), the rows to flag with their bits."""
    result = FamilyResult(Family.RECONCILIATION)
    by_dataset: dict[str, list] = {}
    for (dataset, part), summary in summaries.items():
        if summary is not None and summary.num_rows:
            by_dataset.setdefault(dataset, []).append((part, summary))
    source = next((d for d in INTRADAY_SOURCES if d in by_dataset), None)
    intraday, _ = _concat(by_dataset.get(source, []))
    flags: dict[tuple[str, Hashable], np.ndarray] = {}
    examples: list[Example] = []
    counts: dict[str, int] = {}
    for dataset in EOD_DATASETS:
        eod, keys = _concat(by_dataset.get(dataset, []))
        if eod is None or intraday is None:
            continue
        bits, found, detail, severity = _compare_eod(eod, intraday, limits)
        result.checked += eod.num_rows
        bad = np.flatnonzero(bits)
        result.violations += bad.size
        counts["no_intraday"] = counts.get("no_intraday", 0) + int((~found).sum())
        counts["eod_mismatch"] = counts.get("eod_mismatch", 0) + int((found & (bits > 0)).sum())
        parts = eod.column("part").to_numpy()
        rows = eod.column(ROW).to_numpy()
        for i, key in enumerate(keys):
            mine = bad[parts[bad] == i]
            if mine.size:
                flags[(dataset, key)] = np.stack([rows[mine], bits[mine]])
        examples += _examples(eod, dataset, bad, detail, severity)
        missing = _without(intraday, eod)
        result.checked += missing
        result.violations += missing
        counts["intraday_without_eod"] = counts.get("intraday_without_eod", 0) + missing
    oi, _ = _concat(by_dataset.get(OPEN_INTEREST, []))
    if oi is not None:
        negative = int(pc.sum(pc.less(oi.column("open_interest"), 0)).as_py() or 0)
        result.checked += oi.num_rows
        result.violations += negative
        counts["negative_open_interest"] = negative
        if intraday is not None:
            counts["oi_without_intraday"] = _without(oi, intraday)
    result.counts = {k: v for k, v in counts.items() if v}
    result.examples = sorted(examples, key=lambda e: -e.severity)[:EXAMPLES_PER_FAMILY]
    return result, flags


def _without(these: pa.Table, others: pa.Table) -> int:
    """How many contracts of ``these`` have no row in ``others``."""
    joined = these.select(list(KEYS)).join(
        others.select(list(KEYS)).append_column("seen", pa.array(np.ones(others.num_rows, bool))),
        keys=list(KEYS),
        join_type="left outer",
    )
    return int(pc.sum(pc.is_null(joined.column("seen"))).as_py() or 0)


def _compare_eod(eod: pa.Table, intraday: pa.Table, limits: Thresholds):
    """Per EOD row: its flag bits, whether it has intraday bars, what is wrong, how badly."""
    index = pa.array(np.arange(eod.num_rows))
    left = eod.select(list(KEYS)).append_column("_i", index)
    last = intraday.drop_columns([c for c in ("part",) if c in intraday.column_names])
    last = last.rename_columns([c if c in KEYS else f"bar_{c}" for c in last.column_names])
    joined = left.join(last, keys=list(KEYS), join_type="left outer").sort_by("_i")
    found = pc.is_valid(joined.column("bar_bid")).to_numpy(zero_copy_only=False)
    bar_bid, bar_ask = _num(joined, "bar_bid"), _num(joined, "bar_ask")
    low_bid, high_ask = _num(joined, "bar_low_bid"), _num(joined, "bar_high_ask")
    delta = np.abs(_num(joined, "bar_delta"))
    spot = _num(joined, "bar_underlying_price")
    bid, ask, close = _num(eod, "bid"), _num(eod, "ask"), _num(eod, "close")
    volume = _num(eod, "volume")
    bar_spread = np.where(bar_ask >= bar_bid, bar_ask - bar_bid, 0.0)
    move = np.where(np.isfinite(delta * spot), delta * spot * limits.eod_index_move, 0.0)
    with np.errstate(invalid="ignore"):
        quoted = found & (bid > 0) & (ask >= bid) & ((bar_bid > 0) | (bar_ask > 0))
        tolerance = np.maximum(ask - bid, bar_spread) + limits.arbitrage_tick + move
        quote_off = np.maximum(np.abs(bid - bar_bid), np.abs(ask - bar_ask)) - tolerance
        quote_bad = quoted & (quote_off > 0)
        traded = found & (volume > 0) & (close > 0) & np.isfinite(low_bid) & np.isfinite(high_ask)
        slack = bar_spread + limits.arbitrage_tick + move  # trades fall between the bars
        close_off = np.maximum(low_bid - slack - close, close - high_ask - slack)
        close_bad = traded & (close_off > 0)
    bits = np.zeros(eod.num_rows, dtype=np.uint32)
    bits[~found] |= np.uint32(Flag.NO_INTRADAY)
    bits[quote_bad | close_bad] |= np.uint32(Flag.EOD_MISMATCH)
    severity = np.where(~found, 1.0, np.fmax(np.where(quote_bad, quote_off, 0), 0))
    severity = np.fmax(severity, np.where(close_bad, close_off, 0))

    def detail(i: int) -> str:
        if not found[i]:
            return "EOD row of a contract without intraday bars"
        words = []
        if quote_bad[i]:
            words.append(
                f"EOD bid/ask {bid[i]:.2f}/{ask[i]:.2f} vs the last bar {bar_bid[i]:.2f}/"
                f"{bar_ask[i]:.2f} (tolerance {tolerance[i]:.2f})"
            )
        if close_bad[i]:
            words.append(
                f"close {close[i]:.2f} outside the day's quotes {low_bid[i]:.2f}-{high_ask[i]:.2f}"
            )
        return "; ".join(words)

    return bits, found, detail, severity


def _examples(eod: pa.Table, dataset: str, bad: np.ndarray, detail, severity) -> list[Example]:
    return worst_examples(
        eod, dataset, bad, severity[bad], lambda picked: [detail(int(bad[i])) for i in picked]
    )
