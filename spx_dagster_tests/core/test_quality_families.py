"""The quality families on real published data: the tiny simulator session through the real
stages, read back from its parquet. Clean, it raises no greeks or arbitrage flag; each planted
fault (one number changed in one row, the way a vendor glitch looks) is flagged, in that row.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spx_dagster.core.quality import Family, Flag, Thresholds, describe_flags, evaluate
from spx_dagster.core.quality.thresholds import SPREAD_ERAS
from spx_dagster_tests.core.test_quarantine_malformed import SESSION


def with_value(table: pa.Table, name: str, row: int, value: float) -> pa.Table:
    values = table.column(name).to_numpy().copy()
    values[row] = value
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values))


def a_row(table: pa.Table, *, right: str, minute: str = "12:00", nth: int = 0) -> int:
    """The index of the ``nth`` strike (two-sided quote, by strike) of ``right`` at ``minute``
    ET, in SPXW's weekly expiration (one root and expiration: neighbours in strike are the
    neighbours the arbitrage tests compare)."""
    local = pc.strftime(table.column("timestamp"), format="%H:%M")
    mask = pc.and_(
        pc.and_(pc.equal(local, minute), pc.equal(table.column("right"), right)),
        pc.and_(pc.equal(table.column("root"), "SPXW"), pc.greater(table.column("bid"), 0.5)),
    )
    rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    strikes = table.column("strike").to_numpy()[rows]
    assert len(set(strikes.tolist())) == len(rows)  # one expiration: one row per strike
    return int(rows[np.argsort(strikes, kind="stable")][nth])


def flagged(table: pa.Table, flag: Flag) -> np.ndarray:
    flags = evaluate(table, "greeks", SESSION).flags.to_numpy()
    return np.flatnonzero(flags & np.uint32(flag))


def test_the_clean_session_raises_no_greeks_or_arbitrage_flag(greeks):
    evaluation = evaluate(greeks, "greeks", SESSION)
    families = evaluation.families
    assert families[Family.GREEKS_BOUNDS].checked > 0
    assert families[Family.GREEKS_BOUNDS].violations == 0
    assert families[Family.STRIKE_ARBITRAGE].checked > 0
    assert families[Family.STRIKE_ARBITRAGE].violations == 0
    assert families[Family.STRIKE_ARBITRAGE].measures["minimum_repair"] == 0
    assert evaluation.flags.type == pa.uint32() and len(evaluation.flags) == greeks.num_rows
    # The simulator crosses a rare quote on purpose, as real data does: exactly those rows.
    crossed = np.flatnonzero(
        greeks.column("bid").to_numpy() > greeks.column("ask").to_numpy()
    ).tolist()
    assert flagged(greeks, Flag.CROSSED).tolist() == crossed


@pytest.mark.parametrize(
    ("column", "right", "value", "flag"),
    [
        ("delta", "C", -0.2, Flag.DELTA_BOUNDS),
        ("delta", "P", 0.3, Flag.DELTA_BOUNDS),
        ("vega", "C", -1.0, Flag.NEGATIVE_VEGA),
        ("implied_vol", "P", 0.0, Flag.IV_BOUNDS),
        ("implied_vol", "C", 7.5, Flag.IV_BOUNDS),
        ("iv_error", "C", 0.4, Flag.IV_ERROR),
    ],
)
def test_a_greek_out_of_its_bounds_is_flagged_in_its_row(greeks, column, right, value, flag):
    row = a_row(greeks, right=right, nth=3)
    planted = with_value(greeks, column, row, value)
    assert flagged(planted, flag).tolist() == [row]
    result = evaluate(planted, "greeks", SESSION).families[Family.GREEKS_BOUNDS]
    assert result.violations == 1 and result.score < 1
    [example] = result.examples
    assert (example.strike, example.right) == (greeks["strike"][row].as_py(), right)
    assert example.timestamp == greeks["timestamp"][row].as_py()


def test_a_delta_on_the_wrong_side_for_a_deep_strike_is_flagged(greeks):
    # The deepest in-the-money put at noon (the weekly's strikes sit above the index), more than
    # two standard deviations deep, quoted with the delta of an out-of-the-money one.
    row = a_row(greeks, right="P", nth=-1)
    assert greeks["delta"][row].as_py() < -0.9
    assert flagged(greeks, Flag.DELTA_MONEYNESS).tolist() == []
    assert flagged(with_value(greeks, "delta", row, -0.2), Flag.DELTA_MONEYNESS).tolist() == [row]


def test_a_crossed_quote_and_a_mid_below_intrinsic_are_flagged(greeks):
    row = a_row(greeks, right="P", nth=5)
    ask = greeks["ask"][row].as_py()
    crossed = set(flagged(greeks, Flag.CROSSED).tolist())  # the simulator's own rare ones
    assert set(flagged(with_value(greeks, "bid", row, ask + 1.0), Flag.CROSSED)) == crossed | {row}
    # The deepest in-the-money put quoted at a tenth of its intrinsic value.
    deep = a_row(greeks, right="P", nth=-1)
    spot = greeks["underlying_price"][deep].as_py()
    intrinsic = greeks["strike"][deep].as_py() - spot
    assert intrinsic > 10
    cheap = with_value(with_value(greeks, "bid", deep, intrinsic / 10), "ask", deep, intrinsic / 9)
    assert flagged(cheap, Flag.BELOW_INTRINSIC).tolist() == [deep]


def test_a_spread_wide_for_its_era_is_flagged(greeks):
    row = a_row(greeks, right="C", nth=4)
    bid = greeks["bid"][row].as_py()
    wide = with_value(greeks, "ask", row, bid * 4 + 1)
    assert row in flagged(wide, Flag.WIDE_SPREAD).tolist()
    near, wings = Thresholds.spread_shares(SESSION)
    assert (near, wings) == SPREAD_ERAS[-1][1:]
    assert Thresholds.spread_shares(dt.date(2012, 6, 1)) == SPREAD_ERAS[0][1:]


def test_a_call_priced_above_the_lower_strike_is_a_vertical_arbitrage(greeks):
    lower, upper = a_row(greeks, right="C", nth=1), a_row(greeks, right="C", nth=2)
    lifted = greeks["ask"][lower].as_py() + 5.0
    planted = with_value(with_value(greeks, "bid", upper, lifted), "ask", upper, lifted + 0.2)
    rows = flagged(planted, Flag.VERTICAL).tolist()
    assert upper in rows and set(rows) <= {lower, upper, a_row(greeks, right="C", nth=3)}
    result = evaluate(planted, "greeks", SESSION).families[Family.STRIKE_ARBITRAGE]
    assert result.counts["vertical"] >= 1
    assert result.measures["minimum_repair"] > 4.0
    assert result.examples[0].strike == greeks["strike"][upper].as_py()


def test_a_dent_in_the_put_curve_is_a_butterfly_arbitrage(greeks):
    below, middle, above = (a_row(greeks, right="P", nth=n) for n in (3, 4, 5))
    # A mid pushed far above the chord of its neighbours, still between them: no vertical
    # arbitrage, only convexity broken.
    low, high = greeks["ask"][below].as_py(), greeks["bid"][above].as_py()
    assert high - low > 1.0
    price = high - 0.2
    planted = with_value(with_value(greeks, "bid", middle, price - 0.05), "ask", middle, price)
    assert middle in flagged(planted, Flag.BUTTERFLY).tolist()
    assert flagged(planted, Flag.VERTICAL).tolist() == []


def test_flags_are_named_by_bit():
    assert describe_flags(int(Flag.CROSSED | Flag.BUTTERFLY)) == ["crossed", "butterfly"]
    assert describe_flags(0) == []
    # Bits are part of the published format: never renumbered.
    assert [f.value for f in Flag] == [1 << n for n in range(len(Flag))]
