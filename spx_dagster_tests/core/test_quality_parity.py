"""Put-call parity on real published data (the tiny simulator session through the real stages).

Clean, every minute's strikes agree on one forward and that forward's carry is plausible; a put
lifted the way a stale or mis-keyed quote looks is flagged at its strike, and an index level from
elsewhere moves the forward out of the carry band at the minute it happens.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.quality import Family, Flag, Thresholds, evaluate
from spx_dagster_tests.core.test_quality_families import a_row, with_value
from spx_dagster_tests.core.test_quarantine_malformed import SESSION


def parity_of(table: pa.Table):
    evaluation = evaluate(table, "greeks", SESSION)
    return evaluation.flags.to_numpy(), evaluation.families[Family.PARITY]


def rows_with(flags: np.ndarray, flag: Flag) -> list[int]:
    return np.flatnonzero(flags & np.uint32(flag)).tolist()


def partner(table: pa.Table, row: int) -> int:
    """The other side (put for a call, call for a put) of ``row``'s contract at its minute."""
    other = "P" if table["right"][row].as_py() == "C" else "C"
    mask = pc.and_(
        pc.and_(
            pc.equal(table["root"], table["root"][row]),
            pc.equal(table["expiration"], table["expiration"][row]),
        ),
        pc.and_(
            pc.and_(
                pc.equal(table["strike"], table["strike"][row]),
                pc.equal(table["timestamp"], table["timestamp"][row]),
            ),
            pc.equal(table["right"], other),
        ),
    )
    [index] = np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()
    return index


def cboe_pair(table: pa.Table, root: str, minute: str) -> set[int]:
    """The call and put at ``minute`` of ``root`` whose mids are closest (Cboe's strike)."""
    local = pc.strftime(table["timestamp"], format="%H:%M")
    mask = pc.and_(pc.equal(local, minute), pc.equal(table["root"], root))
    rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    sub = table.take(pa.array(rows))
    mid = 0.5 * (sub["bid"].to_numpy() + sub["ask"].to_numpy())
    strikes = sub["strike"].to_numpy()
    calls = sub["right"].to_numpy(zero_copy_only=False) == "C"
    call_mid = {k: m for k, m, c in zip(strikes, mid, calls, strict=True) if c}
    put_mid = {k: m for k, m, c in zip(strikes, mid, calls, strict=True) if not c}
    best = min(call_mid, key=lambda k: abs(call_mid[k] - put_mid[k]))
    return {int(r) for r, k in zip(rows, strikes, strict=True) if k == best}


def test_clean_minutes_agree_on_one_forward_with_a_plausible_carry(greeks):
    flags, result = parity_of(greeks)
    assert result.checked > 0.8 * greeks.num_rows  # nearly every row has a two-sided partner
    assert result.violations == 0 and result.score == 1.0
    assert result.counts == {"parity_forward": 0, "carry_band": 0}
    carry = result.measures["carry_log_basis"] / result.measures["carry_years"]
    limits = Thresholds()
    assert -limits.carry_dividend_max < carry < limits.carry_rate_max
    assert rows_with(flags, Flag.PARITY_FORWARD) == rows_with(flags, Flag.CARRY_BAND) == []


def test_a_lifted_put_breaks_parity_at_its_strike_only(greeks):
    # As the simulator's parity anomaly: one near-the-money put raised by 0.2 % of the index.
    put = a_row(greeks, right="P", minute="12:00", nth=1)
    call = partner(greeks, put)
    shift = round(0.002 * greeks["underlying_price"][put].as_py(), 1)
    lifted = with_value(greeks, "bid", put, greeks["bid"][put].as_py() + shift)
    lifted = with_value(lifted, "ask", put, greeks["ask"][put].as_py() + shift)
    flags, result = parity_of(lifted)
    # Parity cannot tell which side is off: both rows of the strike, nothing else.
    assert rows_with(flags, Flag.PARITY_FORWARD) == sorted([call, put])
    assert rows_with(flags, Flag.CARRY_BAND) == []
    assert result.counts["parity_forward"] == 2 and result.violations == 2
    assert shift - 2.0 < result.measures["forward_excess"] < shift
    assert result.examples[0].strike == greeks["strike"][put].as_py()
    assert "parity forward" in result.examples[0].detail


def test_a_lifted_put_at_cboes_strike_does_not_move_the_minutes_forward(greeks):
    # The strike nearest the money sets Cboe's forward; the median of the near strikes still
    # outvotes it, so the carry stays in its band and only that strike is flagged.
    pair = sorted(cboe_pair(greeks, "SPXW", "12:00"))
    put = next(r for r in pair if greeks["right"][r].as_py() == "P")
    lifted = with_value(greeks, "bid", put, greeks["bid"][put].as_py() + 11.0)
    lifted = with_value(lifted, "ask", put, greeks["ask"][put].as_py() + 11.0)
    flags, _ = parity_of(lifted)
    assert cboe_pair(lifted, "SPXW", "12:00") == set(pair)
    assert rows_with(flags, Flag.PARITY_FORWARD) == pair
    assert rows_with(flags, Flag.CARRY_BAND) == []


def test_an_index_level_from_elsewhere_puts_the_forward_out_of_the_carry_band(greeks):
    # Every row of 12:00 carries an index 1 % too low (yesterday's level, another feed):
    # the forward implies a carry of about 1 % in 4 days, far beyond any rate.
    local = pc.strftime(greeks["timestamp"], format="%H:%M")
    noon = pc.equal(local, "12:00").to_numpy(zero_copy_only=False)
    spot = greeks["underlying_price"].to_numpy().copy()
    spot[noon] *= 0.99
    moved = greeks.set_column(
        greeks.schema.get_field_index("underlying_price"), "underlying_price", pa.array(spot)
    )
    flags, result = parity_of(moved)
    expected = cboe_pair(greeks, "SPXW", "12:00") | cboe_pair(greeks, "SPX", "12:00")
    assert set(rows_with(flags, Flag.CARRY_BAND)) == expected
    assert rows_with(flags, Flag.PARITY_FORWARD) == []
    assert result.counts["carry_band"] == 4
    assert result.measures["carry_excess"] > 2 * 0.9 * 0.01 * spot[noon].mean()


def test_too_few_near_strikes_leave_dispersion_unchecked(greeks):
    # Two strikes cannot outvote each other: the lifted one is not blamed, Cboe's forward and
    # the carry band are still checked.
    strikes = [greeks["strike"][a_row(greeks, right="P", nth=n)].as_py() for n in (0, 1)]
    keep = pc.and_(pc.equal(greeks["root"], "SPXW"), pc.is_in(greeks["strike"], pa.array(strikes)))
    two = greeks.filter(keep)
    row = a_row(two, right="P", minute="12:00", nth=1)
    lifted = with_value(two, "bid", row, two["bid"][row].as_py() + 11.0)
    lifted = with_value(lifted, "ask", row, two["ask"][row].as_py() + 11.0)
    flags, result = parity_of(lifted)
    assert rows_with(flags, Flag.PARITY_FORWARD) == []
    assert result.checked == two.num_rows
