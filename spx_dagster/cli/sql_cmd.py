"""``spx-data sql``: one read-only DuckDB query over the committed history."""

from __future__ import annotations

import itertools
from pathlib import Path

import click

from spx_dagster.cli.output import emit_json, json_option, note, print_table
from spx_dagster.cli.read_results import (
    cell,
    fail_read,
    open_history_or_fail,
    output_options,
    resolve_format,
    write_result,
)

# Rows a table on the terminal shows; the other formats write every row.
TABLE_ROWS = 1_000

HELP = """Run one read-only SQL query (DuckDB) over the published history.

\b
Views (committed files only, hive column `date`): greeks, eod, open_interest,
quote, greeks_eod. Tables: sessions, files, quality.

\b
Examples:
  spx-data sql "SELECT * FROM sessions"
  spx-data sql "SELECT date, root, count(*) AS rows FROM greeks GROUP BY ALL ORDER BY ALL"
  spx-data sql "SELECT * FROM greeks WHERE date = '2024-11-04'" --output day.parquet
  spx-data sql "DESCRIBE greeks" --format csv
"""


@click.command("sql", help=HELP)
@click.argument("query")
@output_options
@json_option
def sql(query: str, fmt: str | None, output: Path | None, as_json: bool) -> None:
    fmt = resolve_format(fmt, output, as_json)
    history = open_history_or_fail()
    from spx_dagster.read import ReadError

    try:
        schema, batches = history.batches(query)
        if fmt == "table":
            _print(schema, batches)
        elif as_json:
            emit_json(_rows(batches))
        else:
            write_result(schema, batches, fmt, output)
    except ReadError as error:
        fail_read(error)


def _rows(batches) -> list[dict]:
    return [row for batch in batches for row in batch.to_pylist()]


def _print(schema, batches) -> None:
    # Column by column: a query may name two columns alike (SELECT 1 AS a, 2 AS a).
    rows = (row for b in batches for row in zip(*(c.to_pylist() for c in b.columns), strict=True))
    shown = list(itertools.islice(rows, TABLE_ROWS + 1))
    more = len(shown) > TABLE_ROWS
    print_table(schema.names, ([cell(v) for v in row] for row in shown[:TABLE_ROWS]))
    if more:
        note(
            f"showing the first {TABLE_ROWS:,} rows; --format csv|json|parquet --output FILE "
            "writes them all"
        )
