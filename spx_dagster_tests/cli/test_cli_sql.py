"""``spx-data sql`` over sessions published for real (simulator, session job, tmp instance)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pyarrow.parquet as pq

from spx_dagster_tests.cli.reading_history import (
    COMPLETE,
    history,  # noqa: F401  (fixture)
    invoke,
)
from spx_dagster_tests.read.published import COMMITTED, manifest_rows

PER_DAY = "SELECT date, count(*) AS rows FROM greeks GROUP BY ALL ORDER BY date"


def test_a_query_prints_a_table(history) -> None:  # noqa: F811
    result = invoke("sql", PER_DAY)
    assert result.exit_code == 0, result.output
    for day, rows in manifest_rows(history.output_dir, "greeks").items():
        assert f"{day}" in result.stdout and f"{rows}" in result.stdout


def test_csv_and_json_go_to_stdout(history) -> None:  # noqa: F811
    expected = {str(d): n for d, n in manifest_rows(history.output_dir, "greeks").items()}
    result = invoke("sql", PER_DAY, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["date"]: int(r["rows"]) for r in rows} == expected

    for args in (["--format", "json"], ["--json"]):
        result = invoke("sql", PER_DAY, *args)
        assert result.exit_code == 0, result.output
        assert {r["date"]: r["rows"] for r in json.loads(result.stdout)} == expected


def test_output_writes_the_format_of_its_suffix(history, tmp_path) -> None:  # noqa: F811
    target = tmp_path / "greeks.parquet"
    result = invoke("sql", f"SELECT * FROM greeks WHERE date = '{COMPLETE[0]}'", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"to {target} (parquet)" in result.stderr
    table = pq.read_table(target)
    assert table.num_rows == manifest_rows(history.output_dir, "greeks")[COMPLETE[0]]
    assert "implied_vol" in table.column_names and "date" in table.column_names
    assert [p.name for p in tmp_path.iterdir()] == ["greeks.parquet"]  # no temp file left

    target = tmp_path / "sessions.json"
    assert invoke("sql", "SELECT session FROM sessions", "--output", str(target)).exit_code == 0
    assert [r["session"] for r in json.loads(target.read_text())] == [str(d) for d in COMMITTED]


def test_parquet_needs_an_output_file(history) -> None:  # noqa: F811
    result = invoke("sql", "SELECT 1", "--format", "parquet")
    assert result.exit_code == 2
    assert "--format parquet writes binary data: give --output FILE.parquet" in result.stderr
    assert result.stdout == ""


def test_unknown_tables_and_columns_are_named_with_what_exists(history) -> None:  # noqa: F811
    result = invoke("sql", "SELECT * FROM greek")
    assert result.exit_code == 2
    assert "no table or view named 'greek'; tables: sessions, files, quality; views: greeks," in (
        result.stderr
    )
    result = invoke("sql", "SELECT strike, bidd FROM greeks")
    assert result.exit_code == 2
    assert "no column named 'bidd' in greeks; greeks has root, expiration, strike" in result.stderr
    result = invoke("sql", "SELECT nope FROM sessions", "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2 and document["category"] == "usage"
    assert document["error"].startswith("no column named 'nope' in sessions; sessions has session")


def test_a_failing_query_leaves_an_existing_output_untouched(history, tmp_path) -> None:  # noqa: F811
    """The query fails after its first batch was written: the old file stays as it was."""
    target = tmp_path / "result.csv"
    target.write_text("the previous result\n")
    failing = (
        "SELECT i, CASE WHEN i > 150000 THEN error('boom at ' || i) ELSE i END AS v "
        "FROM range(300000) t(i)"
    )
    result = invoke("sql", failing, "--output", str(target))
    assert result.exit_code == 2
    assert "the query failed" in result.stderr and "boom" in result.stderr
    assert target.read_text() == "the previous result\n"
    assert [p.name for p in tmp_path.iterdir()] == ["result.csv"]


def test_writes_are_refused(history) -> None:  # noqa: F811
    result = invoke("sql", "DROP VIEW greeks")
    assert result.exit_code == 2 and "the history is read-only here" in result.stderr


def test_the_sql_command_does_not_import_dagster(history) -> None:  # noqa: F811
    script = (
        "import sys\n"
        "from spx_dagster.cli.main import cli\n"
        "try:\n"
        "    cli(['sql', 'SELECT count(*) FROM greeks', '--format', 'csv'])\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')\n"
        "assert not loaded, loaded[:5]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == str(
        sum(manifest_rows(history.output_dir, "greeks").values())
    )
