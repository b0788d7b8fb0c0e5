"""Calendar arbitrage on real published data (the tiny simulator session through the real stages),
called the way the pipeline calls it: one summary per part (root and expiration), then one check
over the session's summaries.

Clean, SPXW 2024-11-08's total variance lies below SPX 2024-11-15's at every shared minute and
moneyness; an expiration whose volatility is cut (as the simulator's anomaly does) at one minute
is flagged at that minute, in its own rows only.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.quality import SESSION_FAMILIES, Family, Flag, Thresholds
from spx_dagster.core.quality.calendar_arbitrage import (
    SUMMARY_SCHEMA,
    check_session,
    summarize_part,
)

EARLIER = ("SPXW", dt.date(2024, 11, 8))
LATER = ("SPX", dt.date(2024, 11, 15))


def parts_of(table: pa.Table) -> dict[tuple[str, dt.date], pa.Table]:
    """The table split as the pipeline validates it: one part per root and expiration."""
    return {
        key: table.filter(
            pc.and_(pc.equal(table["root"], key[0]), pc.equal(table["expiration"], key[1]))
        )
        for key in (EARLIER, LATER)
    }


def checked(parts: dict, limits: Thresholds | None = None):
    limits = limits or Thresholds()
    summaries = {key: summarize_part(part, limits) for key, part in parts.items()}
    return summaries, *check_session(summaries, limits)


def scaled_iv(part: pa.Table, minute: str, scale: float) -> tuple[pa.Table, np.ndarray]:
    """``part`` with every implied_vol at ``minute`` ET times ``scale``; the rows changed."""
    local = pc.strftime(part["timestamp"], format="%H:%M")
    rows = np.flatnonzero(pc.equal(local, minute).to_numpy(zero_copy_only=False))
    iv = part["implied_vol"].to_numpy().copy()
    iv[rows] *= scale
    index = part.schema.get_field_index("implied_vol")
    return part.set_column(index, "implied_vol", pa.array(iv)), rows


def test_clean_expirations_have_variance_rising_with_maturity(greeks):
    summaries, result, rows = checked(parts_of(greeks))
    assert result.family == Family.CALENDAR_ARBITRAGE
    # The two expirations share out-of-the-money calls at k = 2.0 ... 3.0 % most minutes.
    assert result.checked > 391
    assert result.violations == 0 and result.counts == {"calendar": 0}
    assert {key: len(value) for key, value in rows.items()} == {EARLIER: 0, LATER: 0}
    # Small summaries: at most one row per minute and grid point, whatever the part's size.
    limits = Thresholds()
    points = 2 * round(limits.calendar_grid_max / limits.calendar_grid_step) + 1
    for key, summary in summaries.items():
        assert summary.schema == SUMMARY_SCHEMA
        assert 0 < summary.num_rows <= 391 * points
        assert summary.num_rows < parts_of(greeks)[key].num_rows / 2


def test_a_later_expiration_with_its_variance_cut_is_flagged_at_that_minute(greeks):
    parts = parts_of(greeks)
    # As the simulator's anomaly: the later expiration's IV scaled so its total variance is
    # about half the earlier one's at 12:00 (both have IV ≈ 0.12 here, T 11 vs 4 days).
    parts[LATER], planted = scaled_iv(parts[LATER], "12:00", 0.5)
    _, result, rows = checked(parts)
    assert len(rows[LATER]) > 0 and set(rows[LATER]) <= set(planted.tolist())
    assert len(rows[EARLIER]) == 0
    # Only the out-of-the-money calls both chains quote can be compared.
    later = parts[LATER]
    assert set(later["right"].to_numpy(zero_copy_only=False)[rows[LATER]]) == {"C"}
    assert result.violations >= 1 and result.counts["calendar"] == len(rows[LATER])
    assert result.measures["variance_excess"] > 0
    example = result.examples[0]
    assert (example.root, example.expiration) == LATER
    assert example.timestamp.strftime("%H:%M") == "12:00"
    assert "below" in example.detail and "SPXW 2024-11-08" in example.detail


def test_an_earlier_expiration_with_its_variance_blown_up_flags_the_later_one(greeks):
    # A pair cannot say which side is wrong; the documented choice is the later expiration.
    parts = parts_of(greeks)
    parts[EARLIER], _ = scaled_iv(parts[EARLIER], "12:00", 2.0)
    _, result, rows = checked(parts)
    assert result.violations >= 1
    local = pc.strftime(parts[LATER]["timestamp"], format="%H:%M").to_numpy(zero_copy_only=False)
    assert len(rows[LATER]) > 0 and set(local[rows[LATER]]) == {"12:00"}
    assert len(rows[EARLIER]) == 0


def test_a_cut_within_the_spreads_is_not_flagged(greeks):
    parts = parts_of(greeks)
    parts[LATER], _ = scaled_iv(parts[LATER], "12:00", 0.999)
    assert checked(parts)[1].violations == 0


def test_the_registry_says_how_to_flag_the_parts(greeks):
    family = SESSION_FAMILIES[Family.CALENDAR_ARBITRAGE]
    assert family.flag == Flag.CALENDAR and family.datasets == ("greeks",)
    parts = parts_of(greeks)
    parts[LATER], _ = scaled_iv(parts[LATER], "12:00", 0.5)
    limits = Thresholds()
    summaries = {key: family.summarize_part(part, limits) for key, part in parts.items()}
    _, rows = family.check_session(summaries, limits)
    flags = np.zeros(parts[LATER].num_rows, dtype=np.uint32)
    flags[rows[LATER]] |= np.uint32(family.flag)
    assert (flags != 0).sum() == len(rows[LATER]) > 0
    # A part with no greeks (or nothing quoted) summarises to an empty table and is skipped.
    empty = summarize_part(parts[LATER].slice(0, 0), limits)
    assert empty.num_rows == 0 and empty.schema == SUMMARY_SCHEMA
    result, none = check_session({"a": empty}, limits)
    assert result.checked == 0 and len(none["a"]) == 0
