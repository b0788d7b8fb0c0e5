"""``spx-data chain``: the option chain of one published session at one minute."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import click

from spx_dagster.cli.output import emit_json, json_option, print_table
from spx_dagster.cli.read_results import (
    fail_read,
    open_history_or_fail,
    output_options,
    resolve_format,
    write_result,
)

HELP = """The option chain of one published session at one minute.

\b
Strike, right, bid, ask, mid, implied vol, delta, theta, vega, rho, the
underlying and open interest, sorted by expiration and strike; the table shows
calls and puts side by side per strike. --at defaults to 15:45 ET (12:45 on an
early close), the minute of Cboe's end-of-day snapshots. Exit 2 on bad input,
1 when the session is not published (the message says how to publish it).

\b
Examples:
  spx-data chain 2024-11-04
  spx-data chain 2024-11-04 --at 10:30 --root SPXW --dte 0
  spx-data chain 2024-11-04 --expiration 2024-11-15 --format csv --output chain.csv
"""


@click.command("chain", help=HELP)
@click.argument("date")
@click.option("--at", "at", metavar="HH:MM", help="The minute, in ET (default 15:45).")
@click.option("--root", type=click.Choice(["SPX", "SPXW"], case_sensitive=False))
@click.option("--expiration", metavar="YYYY-MM-DD", help="Only this expiration.")
@click.option("--dte", type=int, help="Only the expiration N calendar days after DATE (0: 0DTE).")
@output_options
@json_option
def chain(
    date: str,
    at: str | None,
    root: str | None,
    expiration: str | None,
    dte: int | None,
    fmt: str | None,
    output: Path | None,
    as_json: bool,
) -> None:
    fmt = resolve_format(fmt, output, as_json)
    history = open_history_or_fail()
    from spx_dagster.read import ReadError

    try:
        table = history.chain(date, at=at, root=root, expiration=expiration, dte=dte)
    except ReadError as error:
        fail_read(error)
    if fmt == "table":
        _print(table)
    elif as_json:
        emit_json(table.to_pylist())
    else:
        write_result(table.schema, table.to_batches(), fmt, output)


# Each side of the table: (heading, column, format).
SIDE = (
    ("bid", "bid", "{:.2f}"),
    ("ask", "ask", "{:.2f}"),
    ("mid", "mid", "{:.2f}"),
    ("iv", "implied_vol", "{:.4f}"),
    ("delta", "delta", "{:+.3f}"),
    ("oi", "open_interest", "{:,}"),
)


def _fmt(template: str, value) -> str:
    return "" if value is None else template.format(value)


def _print(table) -> None:
    """One table per root and expiration: calls left, strike in the middle, puts right."""
    # The minute as text before leaving Arrow: turning a zoned timestamp into Python objects
    # imports pandas, a third of the command's time.
    import pyarrow.compute as pc

    minute = pc.strftime(table["timestamp"], format="%H:%M")
    rows = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", minute)
    rows = rows.to_pylist()
    for (root, expiration), contracts in groupby(rows, key=lambda r: (r["root"], r["expiration"])):
        by_strike: dict[float, dict[str, dict]] = {}
        for row in contracts:
            by_strike.setdefault(row["strike"], {})[row["right"]] = row
        first = next(iter(next(iter(by_strike.values())).values()))
        title = (
            f"{root} {expiration} ({first['dte']} DTE) at {first['timestamp']} ET, "
            f"underlying {_fmt('{:.2f}', first['underlying_price'])}"
        )
        lines = []
        for strike, sides in by_strike.items():
            call, put = sides.get("C", {}), sides.get("P", {})
            lines.append(
                [_fmt(t, call.get(c)) for _, c, t in SIDE]
                + [f"{strike:g}"]
                + [_fmt(t, put.get(c)) for _, c, t in SIDE]
            )
        heads = [f"call {h}" for h, _, _ in SIDE] + ["strike"] + [f"put {h}" for h, _, _ in SIDE]
        print_table(heads, lines, title=title)
