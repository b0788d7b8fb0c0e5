"""Staleness on real published data (the tiny simulator session through the real stages).

Clean, no quote stands still while the index moves it, and every minute shares one index level;
a near-the-money quote frozen for 45 minutes is flagged from its 30th minute on, and one row
carrying another index level is flagged alone.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spx_dagster.core.quality import Family, Flag, Thresholds, evaluate
from spx_dagster_tests.core.test_quality_families import a_row, with_value
from spx_dagster_tests.core.test_quarantine_malformed import SESSION


def staleness_of(table: pa.Table, limits: Thresholds | None = None):
    evaluation = evaluate(table, "greeks", SESSION, limits)
    return evaluation.flags.to_numpy(), evaluation.families[Family.STALENESS]


def rows_with(flags: np.ndarray, flag: Flag) -> list[int]:
    return np.flatnonzero(flags & np.uint32(flag)).tolist()


def minutes_of(table: pa.Table, row: int, first: str, last: str) -> np.ndarray:
    """The rows of ``row``'s contract from ``first`` to ``last`` (HH:MM ET), in time order."""
    local = pc.strftime(table["timestamp"], format="%H:%M")
    mask = pc.and_(pc.greater_equal(local, first), pc.less_equal(local, last))
    for name in ("root", "expiration", "strike", "right"):
        mask = pc.and_(mask, pc.equal(table[name], table[name][row]))
    rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    return rows[np.argsort(table["timestamp"].to_numpy()[rows], kind="stable")]


def frozen(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``rows`` (one contract, in time order) all quoted at the first one's bid and ask."""
    for name in ("bid", "ask"):
        values = table[name].to_numpy().copy()
        values[rows] = values[rows[0]]
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values))
    return table


def test_clean_quotes_move_with_the_index_and_minutes_share_one_level(greeks):
    flags, result = staleness_of(greeks)
    assert result.checked == greeks.num_rows
    assert result.violations == 0 and result.counts == {"stale_quote": 0, "underlying_mismatch": 0}
    # Far wings sit on the same ticks for hours (a limit of 30 minutes alone would flag them)
    # but their deltas are too small for the index to have moved their value by a spread.
    blind = staleness_of(greeks, Thresholds(stale_spreads=0.0))[1]
    assert blind.counts["stale_quote"] > 100
    assert staleness_of(greeks, Thresholds(stale_minutes=1))[1].violations == 0
    assert rows_with(flags, Flag.STALE_QUOTE) == []


def test_a_quote_frozen_for_45_minutes_is_flagged_from_its_30th_minute(greeks):
    contract = a_row(greeks, right="C", minute="11:00", nth=0)
    assert 0.25 <= abs(greeks["delta"][contract].as_py()) <= 0.75  # near the money
    run = minutes_of(greeks, contract, "11:00", "11:45")
    before = minutes_of(greeks, contract, "10:59", "10:59")
    assert greeks["bid"][int(before[0])] != greeks["bid"][int(run[0])]  # the run starts at 11:00
    spot = greeks["underlying_price"].to_numpy()
    moved = spot[run[:31]].max() - spot[run[:31]].min()
    spread = greeks["ask"][int(run[0])].as_py() - greeks["bid"][int(run[0])].as_py()
    assert abs(greeks["delta"][int(run[0])].as_py()) * moved > spread  # the index moved it
    flags, result = staleness_of(frozen(greeks, run))
    assert rows_with(flags, Flag.STALE_QUOTE) == sorted(run[30:].tolist())  # 11:30 ... 11:45
    assert result.counts["stale_quote"] == 16
    assert rows_with(flags, Flag.UNDERLYING_MISMATCH) == []
    assert "unchanged for 45 minutes" in result.examples[0].detail


def test_a_quote_frozen_for_less_than_the_limit_is_not_flagged(greeks):
    contract = a_row(greeks, right="C", minute="11:00", nth=0)
    run = minutes_of(greeks, contract, "11:00", "11:29")
    assert staleness_of(frozen(greeks, run))[1].violations == 0


def test_a_quote_frozen_while_the_index_stood_still_is_not_flagged(greeks):
    contract = a_row(greeks, right="C", minute="11:00", nth=0)
    run = minutes_of(greeks, contract, "11:00", "11:45")
    local = pc.strftime(greeks["timestamp"], format="%H:%M")
    window = pc.and_(pc.greater_equal(local, "11:00"), pc.less_equal(local, "11:45"))
    spot = greeks["underlying_price"].to_numpy().copy()
    spot[window.to_numpy(zero_copy_only=False)] = spot[run[0]]
    still = frozen(greeks, run).set_column(
        greeks.schema.get_field_index("underlying_price"), "underlying_price", pa.array(spot)
    )
    assert staleness_of(still)[1].violations == 0


def test_one_row_with_another_index_level_is_flagged_alone(greeks):
    row = a_row(greeks, right="P", minute="12:00", nth=2)
    spot = greeks["underlying_price"][row].as_py()
    flags, result = staleness_of(with_value(greeks, "underlying_price", row, spot * 0.995))
    assert rows_with(flags, Flag.UNDERLYING_MISMATCH) == [row]
    assert rows_with(flags, Flag.STALE_QUOTE) == []
    assert result.violations == 1
    assert result.measures["underlying_gap"] == pytest.approx(0.005, rel=1e-6)
    assert result.examples[0].strike == greeks["strike"][row].as_py()
    # Within the tolerance (a few cents of timing) is not a disagreement.
    close = with_value(greeks, "underlying_price", row, spot + 0.5)
    assert staleness_of(close)[1].violations == 0
