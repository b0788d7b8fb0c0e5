"""The shared per-part machinery of the quality families: one ``Layout`` of a part's rows, the
cache that lets every family (and the calendar summary after ``evaluate``) reuse it, and the
grouped statistics that replaced sorts. Each is held to the plain computation it stands for,
on the real published tiny session, in vendor order and shuffled.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spx_dagster.core.quality import Thresholds, evaluate
from spx_dagster.core.quality.calendar_arbitrage import summarize_part
from spx_dagster.core.quality.groups import (
    Layout,
    group_first_minimum,
    group_median,
    key_codes,
    layout,
    running_range,
)
from spx_dagster.core.quality.rows import calls, converted_once, floats, once
from spx_dagster_tests.core.test_quarantine_malformed import SESSION


def shuffled(table: pa.Table, seed: int = 7) -> tuple[pa.Table, np.ndarray]:
    order = np.random.default_rng(seed).permutation(table.num_rows)
    return table.take(pa.array(order)), order


def noisy(table: pa.Table, seed: int = 3) -> pa.Table:
    """Bids, asks and index levels moved at random on a tenth of the rows: every family that
    compares rows has something to flag."""
    rng = np.random.default_rng(seed)
    out = table
    for name in ("bid", "ask", "underlying_price"):
        values = table.column(name).to_numpy().copy()
        hit = rng.random(len(values)) < 0.1
        values[hit] *= rng.uniform(0.5, 1.5, hit.sum())
        out = out.set_column(out.schema.get_field_index(name), name, pa.array(values))
    return out


def reference_median(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.full(n_groups, np.nan)
    for g in range(n_groups):
        mine = np.sort(values[group == g])
        if len(mine):
            out[g] = 0.5 * (mine[(len(mine) - 1) // 2] + mine[len(mine) // 2])
    return out


@pytest.mark.parametrize("in_order", [True, False], ids=["vendor order", "shuffled"])
def test_the_layout_orders_rows_as_a_full_sort_of_the_keys(greeks, in_order):
    table = greeks if in_order else shuffled(greeks)[0]
    lay = Layout(table)
    root, expiration, stamp, strike = (
        key_codes(table, n) for n in ("root", "expiration", "timestamp", "strike")
    )
    put = ~calls(table)
    assert lay.contract_sorted is in_order
    # np.lexsort sorts by its last key first; every sort here is stable (ties in row order).
    assert (lay.by_minute == np.lexsort((put, strike, stamp, expiration, root))).all()
    assert (lay.by_contract == np.lexsort((stamp, put, strike, expiration, root))).all()
    minute = np.unique(np.stack((root, expiration, stamp)), axis=1, return_inverse=True)[1]
    assert (lay.minute == minute.ravel()).all()
    by_contract = lay.by_contract
    contract = np.stack((root, expiration, strike, put))[:, by_contract]
    starts = np.r_[True, (contract[:, 1:] != contract[:, :-1]).any(axis=0)]
    assert (lay.contract_starts == starts).all()


def test_string_keys_sort_like_the_strings_and_one_value_is_zero():
    mixed = pa.table({"root": ["SPXW", "SPX", "SPXW", None]})
    assert key_codes(mixed, "root").tolist() == [1, 0, 1, -1]
    one = pa.table({"root": ["SPXW", "SPX", "SPX", "SPX"]}).slice(1)
    assert key_codes(one, "root").tolist() == [0, 0, 0]
    rights = pa.table({"right": ["P", "C", "C", "P"]}).slice(1)
    assert calls(rights).tolist() == [True, True, False]


@pytest.mark.parametrize("in_order", [True, False], ids=["vendor order", "shuffled"])
def test_the_families_flag_the_same_rows_whatever_the_row_order(greeks, in_order):
    table = noisy(greeks)
    baseline = evaluate(table, "greeks", SESSION)
    other, order = (table, np.arange(table.num_rows)) if in_order else shuffled(table)
    result = evaluate(other, "greeks", SESSION)
    assert (result.flags.to_numpy() == baseline.flags.to_numpy()[order]).all()
    assert baseline.flags.to_numpy().any()
    for family, expected in baseline.families.items():
        got = result.families[family]
        assert (got.checked, got.violations, got.counts) == (
            expected.checked,
            expected.violations,
            expected.counts,
        ), family
        assert got.measures == pytest.approx(expected.measures), family
    limits = Thresholds()
    assert summarize_part(other, limits).num_rows == summarize_part(table, limits).num_rows


def test_a_block_on_the_same_buffers_reuses_what_the_last_block_derived(greeks):
    part = greeks.drop_columns(["flags"])  # as validation evaluates it
    with converted_once(part):
        bid = floats(part, "bid")
        first = layout(part)
        assert layout(part) is first
    flagged = part.append_column("flags", pa.array(np.zeros(part.num_rows, np.uint32)))
    with converted_once(flagged):  # the calendar summary's view of the part, after evaluate
        assert layout(flagged) is first
        assert floats(flagged, "bid") is bid
    copy = pa.Table.from_pydict(part.to_pydict(), schema=part.schema)  # same values
    with converted_once(copy):
        assert layout(copy) is not first
    with converted_once(part):
        assert layout(part) is not first  # another part came in between: dropped
    assert once(part, "outside", lambda: 1) == 1  # outside a block: computed, not kept


def test_group_median_is_the_median_of_each_group(greeks):
    spot = floats(greeks, "underlying_price")
    lay = Layout(greeks)
    rows = lay.by_minute
    group = lay.minute[rows]
    values = spot[rows].copy()
    values[::97] += 1.0  # some minutes disagree, most share one level
    values[5] = np.nan
    expected = reference_median(values, group, lay.n_minutes + 2)
    got = group_median(values, group, lay.n_minutes + 2)  # two empty groups at the end
    assert np.array_equal(got, expected, equal_nan=True)
    mixed = np.random.default_rng(1).permutation(len(values))  # groups not contiguous
    got = group_median(values[mixed], group[mixed], lay.n_minutes + 2)
    assert np.array_equal(got, expected, equal_nan=True)


def test_group_first_minimum_is_the_first_smallest_of_each_group():
    group = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    values = np.array([3.0, 1.0, 1.0, 2.0, 2.0, 5.0, 4.0, 4.0])
    assert group_first_minimum(values, group).tolist() == [1, 3, 6]
    values[6] = np.nan  # NaN sorts last, as in np.lexsort
    assert group_first_minimum(values, group).tolist() == [1, 3, 7]


def test_the_running_range_over_whole_segments_is_the_full_computation(greeks):
    lay = Layout(greeks)
    values = floats(greeks, "underlying_price")[lay.by_contract]
    starts = lay.contract_starts.copy()
    starts[::50] = True  # shorter segments than whole contracts
    segment = np.cumsum(starts) - 1
    within = segment % 3 == 0
    full = running_range(values, starts)
    part = running_range(values, starts, within)
    assert np.array_equal(part[within], full[within])
    assert (part[~within] == 0).all()
    assert full.max() > 0
