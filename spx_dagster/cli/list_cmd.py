"""``spx-data list``: processed sessions with their status and metadata."""

from __future__ import annotations

from collections import Counter

import click

from spx_dagster.cli.output import emit_json, json_option, note, print_table, say
from spx_dagster.cli.read_options import (
    human_bytes,
    human_quality,
    human_seconds,
    imports_done,
    load_settings_or_fail,
    parse_range_or_fail,
    range_options,
    storage_or_fail,
)
from spx_dagster.core.calendar import open_session
from spx_dagster.core.history import SessionState

STATES = [s.value for s in SessionState]

HELP = """List processed sessions with their status and metadata.

\b
Statuses: complete, failed, no_data (the vendor had no data), corrupt (files do not match their
checksums), in_progress, missing (never processed). Sessions that were never processed are
counted but not listed unless asked for with --status missing.

\b
Examples:
  spx-data list --from 2024-01-01
  spx-data list --status failed --status corrupt
  spx-data list --from 2024-03-01 --to 2024-03-31 --json
"""


@click.command("list", help=HELP)
@range_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATES),
    help="Only sessions in this status (repeatable).",
)
@json_option
def list_sessions(
    from_text: str | None, to_text: str | None, statuses: tuple[str, ...], as_json: bool
) -> None:
    start, end = parse_range_or_fail(from_text, to_text)
    settings = load_settings_or_fail()
    storage_or_fail(settings)
    from spx_dagster.core.snapshot import build_snapshot
    from spx_dagster.ops.sqlite_facts import reading_facts

    facts = reading_facts()  # without Dagster where the instance allows (ops.sqlite_facts)
    imports_done()
    snapshot = build_snapshot(facts, settings, start, end)
    records = list(snapshot.records.values())
    counts = Counter(r.state.value for r in records)
    wanted = set(statuses) or (set(STATES) - {SessionState.MISSING.value})
    shown = [r for r in records if r.state.value in wanted]
    trading = open_session()
    if as_json:
        emit_json(
            {
                "open_session": trading.isoformat() if trading else None,
                "from": snapshot.start.isoformat(),
                "to": snapshot.end.isoformat(),
                "counts": {state: counts.get(state, 0) for state in STATES},
                "sessions": [r.to_dict() for r in shown],
            }
        )
        return
    if shown:
        print_table(
            ["session", "status", "rows", "size", "quality", "duration", "attempts", "last error"],
            (
                [
                    r.session.isoformat(),
                    r.state.value,
                    f"{r.rows:,}" if r.rows else "-",
                    human_bytes(r.bytes) if r.bytes else "-",
                    human_quality(r.quality),
                    human_seconds(r.duration_s),
                    r.attempts,
                    r.last_error_category if r.state is SessionState.FAILED else "",
                ]
                for r in shown
            ),
            no_wrap=["session"],
        )
    else:
        note(f"no session in {snapshot.start}..{snapshot.end} matches")
    summary = ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s))
    say(f"{snapshot.start}..{snapshot.end}: {len(records)} sessions ({summary or 'none'})")
    if trading is not None and end is None:
        note(
            f"{trading} is trading now: the Dagster UI lists its partition, but it cannot be "
            "processed before its end-of-day report at 17:15 ET"
        )
