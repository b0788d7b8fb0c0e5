"""``spx-data chain`` and ``History.chain`` over sessions published for real."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import duckdb
import pytest

from spx_dagster.core.calendar import ET
from spx_dagster.core.storage import load_manifest
from spx_dagster.read import open_history
from spx_dagster.read.chain import CHAIN_COLUMNS, default_minute
from spx_dagster_tests.cli.reading_history import (
    COMPLETE,
    FAILED,
    NO_DATA,
    history,  # noqa: F401  (fixture)
    invoke,
)

DAY = COMPLETE[0]


def direct_chain(output_dir, day: dt.date, minute: dt.time) -> list[tuple]:
    """The same minute read straight from the session's listed greeks file."""
    path = output_dir / load_manifest(output_dir, day).datasets["greeks"].files[0].path
    stamp = dt.datetime.combine(day, minute, tzinfo=ET)
    return duckdb.execute(
        f"SELECT root, expiration, strike, \"right\", bid, ask, delta FROM '{path}' "
        'WHERE timestamp = ? ORDER BY expiration, root, strike, "right"',
        [stamp],
    ).fetchall()


def test_the_default_minute_is_a_quarter_before_the_close() -> None:
    assert default_minute(DAY) == dt.time(15, 45)
    assert default_minute(dt.date(2024, 11, 29)) == dt.time(12, 45)  # after Thanksgiving
    assert default_minute(dt.date(2024, 12, 24)) == dt.time(12, 45)


def test_the_chain_is_the_minute_of_every_contract_sorted(history) -> None:  # noqa: F811
    with open_history(history.output_dir) as reader:
        table = reader.chain(DAY)
    assert table.column_names == list(CHAIN_COLUMNS)
    rows = table.to_pylist()
    expected = direct_chain(history.output_dir, DAY, dt.time(15, 45))
    assert [
        (r["root"], r["expiration"], r["strike"], r["right"], r["bid"], r["ask"], r["delta"])
        for r in rows
    ] == expected
    assert {r["timestamp"] for r in rows} == {dt.datetime(2024, 11, 4, 15, 45, tzinfo=ET)}
    assert all(r["dte"] == (r["expiration"] - DAY).days for r in rows)
    quoted = [r for r in rows if r["ask"] > 0]
    assert quoted and all(r["mid"] == pytest.approx((r["bid"] + r["ask"]) / 2) for r in quoted)
    assert all(r["mid"] is None for r in rows if r["ask"] == 0)
    oi = duckdb.execute(
        'SELECT root, expiration, strike, "right", open_interest FROM read_parquet(?)',
        [
            str(history.output_dir / f.path)
            for f in load_manifest(history.output_dir, DAY).datasets["open_interest"].files
        ],
    ).fetchall()
    assert {
        (r["root"], r["expiration"], r["strike"], r["right"], r["open_interest"]) for r in rows
    } == set(oi)


def test_root_expiration_and_dte_narrow_the_chain(history) -> None:  # noqa: F811
    manifest = load_manifest(history.output_dir, DAY)
    expiration = manifest.expirations["SPXW"][0]
    with open_history(history.output_dir) as reader:
        by_expiration = reader.chain(DAY, at="10:30", root="SPXW", expiration=expiration)
        by_dte = reader.chain(DAY, at=dt.time(10, 30), root="spxw", dte=(expiration - DAY).days)
    assert by_expiration.num_rows > 0 and by_expiration.equals(by_dte)
    assert set(by_expiration.column("root").to_pylist()) == {"SPXW"}
    assert set(by_expiration.column("expiration").to_pylist()) == {expiration}
    assert by_expiration.num_rows == len(
        [
            r
            for r in direct_chain(history.output_dir, DAY, dt.time(10, 30))
            if r[:2] == ("SPXW", expiration)
        ]
    )


def test_the_table_shows_calls_and_puts_side_by_side(history) -> None:  # noqa: F811
    result = invoke("chain", str(DAY), "--root", "SPXW")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "strike" in line)
    cells = [c.strip() for c in header.strip("┃").split("┃")]
    assert cells[:2] == ["call bid", "call ask"] and cells[6] == "strike"
    assert cells[7:9] == ["put bid", "put ask"]
    expiration = load_manifest(history.output_dir, DAY).expirations["SPXW"][0]
    assert f"SPXW {expiration} ({(expiration - DAY).days} DTE) at 15:45 ET" in result.stdout
    strikes = {
        r[2] for r in direct_chain(history.output_dir, DAY, dt.time(15, 45)) if r[0] == "SPXW"
    }
    lines = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(lines) == len(strikes)  # one line per strike, call and put on it


def test_csv_json_and_parquet_hold_the_same_rows(history, tmp_path) -> None:  # noqa: F811
    with open_history(history.output_dir) as reader:
        expected = reader.chain(DAY)
    result = invoke("chain", str(DAY), "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == expected.num_rows and list(rows[0]) == list(CHAIN_COLUMNS)
    result = invoke("chain", str(DAY), "--json")
    assert result.exit_code == 0, result.output
    assert [r["strike"] for r in json.loads(result.stdout)] == expected.column("strike").to_pylist()
    target = tmp_path / "chain.parquet"
    assert invoke("chain", str(DAY), "--output", str(target)).exit_code == 0
    import pyarrow.parquet as pq

    assert pq.read_table(target).equals(expected)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (
            ["2024-11-09"],
            2,
            "2024-11-09 is a Saturday, not a trading session; nearest sessions: "
            "2024-11-08 or 2024-11-11",
        ),
        ([str(FAILED)], 1, f"{FAILED} is not published in "),
        ([str(FAILED)], 1, f"publish it with `spx-data process {FAILED}`"),
        ([str(NO_DATA)], 1, f"ThetaData had no data for {NO_DATA}"),
        (
            [str(DAY), "--at", "08:00"],
            2,
            "--at 08:00 is outside the session of 2024-11-04, which runs 09:30-16:15 ET",
        ),
        ([str(DAY), "--at", "3pm"], 2, "--at '3pm' is not a time of day; use HH:MM"),
        (
            [str(DAY), "--dte", "4", "--expiration", "2024-11-08"],
            2,
            "give --expiration or --dte, not both",
        ),
        ([str(DAY), "--dte", "-1"], 2, "--dte -1 is negative"),
        (
            [str(DAY), "--expiration", "2024-11-09"],
            2,
            "2024-11-09 is not an expiration of the SPX/SPXW chain of 2024-11-04; expirations: ",
        ),
        ([str(DAY), "--dte", "1"], 2, "days to expiration in the chain: "),
        ([str(DAY), "--format", "parquet"], 2, "give --output FILE.parquet"),
    ],
)
def test_bad_input_is_named_with_the_fix(history, args, code, says) -> None:  # noqa: F811
    result = invoke("chain", *args)
    assert result.exit_code == code, result.output
    assert says in result.stderr
    assert result.stdout == ""


def test_an_expiration_not_in_the_chain_lists_those_that_are(history) -> None:  # noqa: F811
    manifest = load_manifest(history.output_dir, DAY)
    listed = sorted({e for days in manifest.expirations.values() for e in days})
    result = invoke("chain", str(DAY), "--expiration", "2024-11-09", "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["error"].endswith("expirations: " + ", ".join(map(str, listed)))
