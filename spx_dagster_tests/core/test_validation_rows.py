"""Row-level validation with real pandera on realistic synthetic tables."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.quality import Flag
from spx_dagster.core.storage import PartKey
from spx_dagster.core.storage.layout import TempLayout
from spx_dagster.core.storage.stage_tables import read_stage_table, write_stage_table
from spx_dagster.core.validation import (
    QualityAccumulator,
    SchemaBreak,
    ValidationContext,
    build_schema,
    validate_staged_dataset,
    validate_table,
)
from spx_dagster.core.validation.validate import NOT_INCREASING
from spx_dagster_tests.factories import make_table

SESSION = dt.date(2024, 3, 15)
CONTEXT = ValidationContext(SESSION)


def _set(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    return table.set_column(
        index,
        table.schema.field(column).with_nullable(True),
        pa.array(values, table.schema.field(column).type),
    )


def _greeks(**kw) -> pa.Table:
    return make_table("greeks", SESSION, n_strikes=4, **kw)


def test_clean_tables_of_every_dataset_pass() -> None:
    for dataset in ("greeks", "eod", "open_interest", "quote", "greeks_eod"):
        table = make_table(
            dataset, SESSION, n_strikes=4, expirations=[SESSION, SESSION + dt.timedelta(days=3)]
        )
        result = validate_table(table, dataset, CONTEXT)
        assert result.rejected.num_rows == 0, (
            dataset,
            result.rejected.column("reason").to_pylist(),
        )
        assert result.valid.num_rows == table.num_rows
        assert result.valid.schema.names == DATASETS[dataset].published_schema.names


def test_rejected_rows_carry_every_failed_check_as_reason() -> None:
    table = _greeks()
    call = table["right"].to_pylist().index("C")  # first call row: contract 0, 09:30
    table = _set(table, "bid", 0, -0.5)
    table = _set(table, "root", 1, None)
    table = _set(table, "ask", 2, -1.0)
    table = _set(table, "delta", 2, -0.4 if table["right"][2].as_py() == "C" else 0.4)
    table = _set(table, "implied_vol", 3, -0.1)
    table = _set(table, "right", 4, "X")
    table = _set(table, "strike", 5, 0.0)
    assert call == 0
    result = validate_table(table, "greeks", CONTEXT)
    reasons = dict(
        zip(
            result.rejected["timestamp"].to_pylist(),
            result.rejected["reason"].to_pylist(),
            strict=True,
        )
    )
    by_row = {i: reasons[table["timestamp"][i].as_py()] for i in range(6)}
    assert by_row[0] == "bid must be >= 0"
    assert by_row[1] == "root must not be null"
    assert by_row[2] == "ask must be >= 0"  # its wrong-signed delta alone would be flagged
    assert by_row[3] == "implied_vol must be >= 0"
    assert result.rejected.num_rows == 6  # "right must be C or P" is row 4's only reason below
    assert "right must be C or P" in reasons[table["timestamp"][4].as_py()]
    assert result.stats.rejected_rows == 6 and result.stats.valid_rows == table.num_rows - 6
    assert result.stats.reasons["bid must be >= 0"] == 1
    assert result.stats.reasons["strike must be > 0"] == 1


def test_crossed_quotes_are_flagged_not_dropped() -> None:
    table = _greeks()
    quoted = next(
        i
        for i, (b, a) in enumerate(
            zip(table["bid"].to_pylist(), table["ask"].to_pylist(), strict=True)
        )
        if b > 0
    )
    table = _set(table, "bid", quoted, table["ask"][quoted].as_py() + 1.0)
    result = validate_table(table, "greeks", CONTEXT)
    assert result.rejected.num_rows == 0
    assert result.stats.crossed_rows == 1
    assert result.stats.zero_quote_rows > 0  # the factory's far wings
    assert result.valid.num_rows == table.num_rows


def test_a_delta_of_the_wrong_sign_is_flagged_and_published() -> None:
    table = _greeks()
    right = table["right"].to_pylist()
    put, call = right.index("P"), right.index("C")
    table = _set(table, "delta", call, 1.0 + 1e-9)  # rounding noise: not flagged
    table = _set(table, "delta", put, 0.2)  # a put with a call's delta: implausible
    result = validate_table(table, "greeks", CONTEXT)
    assert result.rejected.num_rows == 0
    flags = result.valid["flags"].to_numpy()
    assert np.flatnonzero(flags & np.uint32(Flag.DELTA_BOUNDS)).tolist() == [put]
    assert result.stats.families["greeks_bounds"].counts["delta_bounds"] == 1


def test_timestamps_outside_the_session_window_are_rejected() -> None:
    table = _greeks()
    stamp = table["timestamp"][0].as_py()
    table = _set(table, "timestamp", 0, stamp.replace(hour=9, minute=0))
    table = _set(table, "expiration", 1, SESSION - dt.timedelta(days=1))
    result = validate_table(table, "greeks", CONTEXT)
    reasons = sorted(result.rejected["reason"].to_pylist())
    assert reasons == [
        "expiration must be on or after 2024-03-15",
        "timestamp must be 09:30-16:00 on 2024-03-15",
    ]

    oi = make_table("open_interest", SESSION, n_strikes=2)
    oi = _set(oi, "timestamp", 0, oi["timestamp"][0].as_py() - dt.timedelta(days=1))
    assert validate_table(oi, "open_interest", CONTEXT).rejected["reason"].to_pylist() == [
        "timestamp must be on 2024-03-15"
    ]
    eod = make_table("eod", SESSION, n_strikes=2)
    eod = _set(eod, "created", 0, eod["created"][0].as_py() + dt.timedelta(days=1))
    assert validate_table(eod, "eod", CONTEXT).rejected["reason"].to_pylist() == [
        "created must be on 2024-03-15"
    ]


def test_non_increasing_timestamps_per_contract_are_rejected() -> None:
    table = _greeks()
    stamp = table["timestamp"][10].as_py()
    table = _set(table, "timestamp", 11, stamp)  # duplicate minute within contract 0
    result = validate_table(table, "greeks", CONTEXT)
    assert result.rejected["reason"].to_pylist() == [NOT_INCREASING]
    assert result.stats.contracts == 8
    # The contract lost a row: an interval-completeness deficit, the rest of its rows kept.
    assert result.stats.complete_contracts == 7


def test_interval_completeness_counts_contracts_with_missing_rows() -> None:
    table = _greeks()
    keep = np.ones(table.num_rows, dtype=bool)
    keep[391 : 391 + 5] = False  # contract 1 misses five minutes
    result = validate_table(table.filter(pa.array(keep)), "greeks", CONTEXT)
    assert result.rejected.num_rows == 0
    assert (result.stats.contracts, result.stats.complete_contracts) == (8, 7)


def test_early_close_shortens_the_window_and_the_expected_rows() -> None:
    day_after_thanksgiving = dt.date(2024, 11, 29)
    context = ValidationContext(day_after_thanksgiving)
    assert context.effective_end == dt.time(13, 0)
    assert context.expected_rows_per_contract == 211
    assert ValidationContext(
        day_after_thanksgiving, end_time=dt.time(16, 15)
    ).effective_end == dt.time(13, 15)
    table = make_table("greeks", day_after_thanksgiving, n_strikes=2)
    result = validate_table(table, "greeks", context)
    assert result.stats.complete_contracts == result.stats.contracts == 4
    late = _set(table, "timestamp", 5, table["timestamp"][5].as_py().replace(hour=14))
    assert validate_table(late, "greeks", context).rejected.num_rows == 1


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda t: t.drop_columns(["delta"]), "missing column(s) delta"),
        (
            lambda t: t.append_column("gamma", pa.array([0.0] * t.num_rows)),
            "unexpected column(s) gamma",
        ),
        (
            lambda t: t.set_column(2, "strike", pa.array(["x"] * t.num_rows)),
            "column strike is string, expected double",
        ),
        (
            lambda t: t.set_column(4, "timestamp", t["timestamp"].cast(pa.timestamp("ms"))),
            "without a time zone",
        ),
    ],
)
def test_schema_breaking_responses_raise_schema_break(mutate, problem) -> None:
    with pytest.raises(SchemaBreak) as caught:
        validate_table(mutate(_greeks()), "greeks", CONTEXT, source="SPXW_2024-03-15.parquet")
    assert problem in str(caught.value)
    assert "SPXW_2024-03-15.parquet" in str(caught.value)


def test_lossless_type_differences_are_coerced() -> None:
    table = _greeks()
    table = table.set_column(2, "strike", pa.array([int(s) for s in table["strike"].to_pylist()]))
    table = table.set_column(0, "root", table["root"].cast(pa.large_string()))
    utc = pa.timestamp("ms", tz="UTC")
    table = table.set_column(4, "timestamp", table["timestamp"].cast(utc))
    result = validate_table(table, "greeks", CONTEXT)
    assert result.rejected.num_rows == 0
    assert result.valid.schema.field("strike").type == pa.float64()


def test_schema_has_a_check_for_each_rule() -> None:
    schema = build_schema("greeks", CONTEXT)
    assert not schema.columns["root"].nullable and schema.columns["bid"].nullable
    assert not schema.columns["timestamp"].nullable
    assert schema.strict


def test_validated_stage_writes_valid_parts_and_one_quarantine_file(tmp_path: Path) -> None:
    temp, output = tmp_path / "tmp", tmp_path / "out"
    parts = [PartKey("SPXW", SESSION), PartKey("SPXW", SESSION + dt.timedelta(days=3))]
    for i, part in enumerate(parts):
        table = make_table("greeks", SESSION, expirations=[part.expiration], n_strikes=3, seed=i)
        write_stage_table(
            TempLayout.of(temp).staged_file(SESSION, "greeks", part), _set(table, "bid", i, -1.0)
        )
    quality = QualityAccumulator([(p.root, p.expiration) for p in parts])
    result = validate_staged_dataset(temp, SESSION, "greeks", CONTEXT, quality)
    assert result.parts == 2 and result.stats.rejected_rows == 2
    # Collected in the temp stage: the published output changes only with the manifest commit.
    assert result.quarantine.path == TempLayout.of(temp).validated_quarantine_file(
        SESSION, "greeks"
    )
    assert not output.exists()
    quarantined = pq.read_table(result.quarantine.path)
    assert quarantined["reason"].to_pylist() == ["bid must be >= 0"] * 2
    assert quarantined.schema.names[-1] == "reason"
    for part in parts:
        assert (
            read_stage_table(TempLayout.of(temp).validated_file(SESSION, "greeks", part)).num_rows
            == 3 * 2 * 391 - 1
        )
    report = quality.report()
    assert report.counts["rejected_rows"] == 2
    assert report.parts["validity"] == pytest.approx(1 - 2 / (2 * 3 * 2 * 391))

    # A clean re-run removes the stale quarantine file.
    for i, part in enumerate(parts):
        table = make_table("greeks", SESSION, expirations=[part.expiration], n_strikes=3, seed=i)
        write_stage_table(TempLayout.of(temp).staged_file(SESSION, "greeks", part), table)
    assert validate_staged_dataset(temp, SESSION, "greeks", CONTEXT).quarantine is None
    assert not TempLayout.of(temp).validated_quarantine_file(SESSION, "greeks").exists()


@pytest.mark.slow
def test_importing_validation_keeps_pyarrow_time_zones() -> None:
    """pandera would set PYARROW_IGNORE_TIMEZONE=1 and shift every ET datetime by 4-5 hours."""
    code = (
        "import datetime as dt, zoneinfo, pyarrow as pa\n"
        "import spx_dagster.core.validation\n"
        "t = dt.datetime(2024, 3, 15, 9, 30, tzinfo=zoneinfo.ZoneInfo('America/New_York'))\n"
        "print(pa.array([t], pa.timestamp('ms', tz='America/New_York'))[0].as_py().hour)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYARROW_IGNORE_TIMEZONE"}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.stdout.strip() == "9", done.stderr
