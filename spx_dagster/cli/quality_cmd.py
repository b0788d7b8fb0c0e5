"""``spx-data quality``: the research quality vector of sessions, its worst rows, trend, alerts."""

from __future__ import annotations

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import emit_json, fail, json_option, print_table, say, warn
from spx_dagster.cli.read_options import (
    load_settings_or_fail,
    parse_range_or_fail,
    storage_or_fail,
)
from spx_dagster.core.quality import Family
from spx_dagster.core.quality.report import TREND_WINDOW, quality_history

HELP = """Show the quality families of published sessions: scores, worst rows, trend, alerts.

\b
Each family (quote_sanity, greeks_bounds, strike_arbitrage, ...) checks the published rows and
flags the implausible ones in the `flags` column (they are published, never dropped); its score
is 1 - flagged / checked rows. One DATE shows every family's worst contracts and minutes; a
range shows the vector per session, the trend (the last --window sessions against the ones
before) and an alert for every session where a family fell below its alert level.

\b
Examples:
  spx-data quality 2024-11-04
  spx-data quality --from 2024-11-01 --to 2024-11-29 --family strike_arbitrage
  spx-data quality 2024-11-04 --json
"""


@click.command("quality", help=HELP)
@click.argument("date", required=False, metavar="[DATE]")
@click.option("--from", "from_text", metavar="D", help="First session of a range.")
@click.option("--to", "to_text", metavar="D", help="Last session of a range.")
@click.option(
    "--family",
    type=click.Choice([f.value for f in Family]),
    help="Only this family.",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=TREND_WINDOW,
    show_default=True,
    help="Sessions on each side of the trend comparison.",
)
@json_option
def quality(
    date: str | None,
    from_text: str | None,
    to_text: str | None,
    family: str | None,
    window: int,
    as_json: bool,
) -> None:
    if bool(date) == bool(from_text or to_text):
        fail(
            "say which sessions: one DATE or a range with --from D --to D "
            "(e.g. spx-data quality 2024-11-04)",
            exit_codes.USAGE,
        )
    if date:
        start, _ = parse_range_or_fail(date, None)
        end = start
    else:
        start, end = parse_range_or_fail(from_text, to_text)
    settings = load_settings_or_fail()
    storage_or_fail(settings)
    history = quality_history(settings.storage.output_dir, start, end, window=window)
    if as_json:
        emit_json(history.to_dict(family))
        return
    if not history.sessions:
        if date:
            fail(
                f"{start} is not published; publish it with `spx-data process {start}`",
                exit_codes.WORK_FAILED,
            )
        say(f"no published session in {start or '...'}..{end or '...'}")
        return
    names = [family] if family else sorted({n for s in history.sessions for n in s.families})
    if not names:
        say(
            "these sessions were published before the quality families existed (schema 1); "
            "re-publish one with `spx-data process DATE --force` to measure it"
        )
        return
    print_table(
        ["session", "score", *names],
        [
            [
                str(s.session),
                "" if s.score is None else f"{s.score:.4f}",
                *(_cell(s.families.get(n)) for n in names),
            ]
            for s in history.sessions
        ],
        title="Quality families (score, flagged/checked rows)",
        no_wrap=["session"],
    )
    if date:
        for name in names:
            vector = history.sessions[0].families.get(name)
            if vector and vector.get("examples"):
                print_table(
                    ["dataset", "root", "expiration", "strike", "right", "time", "detail"],
                    [_example_row(e) for e in vector["examples"]],
                    title=f"{name}: worst rows",
                )
    for trend in history.trends:
        if family is None or trend.family == family:
            say(
                f"trend {trend.family}: {trend.recent:.4f} over the last {trend.window} sessions "
                f"vs {trend.before:.4f} before ({trend.change:+.4f})"
            )
    for alert in history.alerts:
        if family is None or alert.family == family:
            warn(alert.message)


def _cell(vector: dict | None) -> str:
    if not vector or vector.get("score") is None:
        return "-"
    return f"{vector['score']:.4f} ({vector['violations']}/{vector['checked']})"


def _example_row(example: dict) -> list[str]:
    at = example.get("timestamp")
    return [
        example["dataset"],
        example["root"],
        example["expiration"],
        "" if example["strike"] is None else f"{example['strike']:g}",
        example["right"] or "",
        "" if at is None else at[11:16],
        example["detail"],
    ]
