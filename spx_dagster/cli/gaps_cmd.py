"""``spx-data gaps``: sessions that are missing or not trustworthy, prioritised, with estimates."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.backfill_plans import pace_text
from spx_dagster.cli.output import emit_json, fail, json_option, note, print_table, say, to_json
from spx_dagster.cli.read_options import (
    human_bytes,
    human_seconds,
    imports_done,
    load_settings_or_fail,
    parse_range_or_fail,
    range_options,
    storage_or_fail,
)
from spx_dagster.core.history import GapKind

HELP = """Find missing, failed, corrupt and low-quality sessions, prioritised, with estimates.

\b
Every expected trading session (weekends and NYSE holidays excluded) that is not complete and
trustworthy is a gap: never attempted, failed (with the last error's category), corrupt (files
do not match their checksums, found by a run or `spx-data verify`), low quality (below
quality.min_score), incomplete (published with vendor holes: no data for expirations it listed,
or a coverage score below its threshold; the gap sensor revisits them 1 and 7 days after the
first publish, and the table shows the next revisit's date) or, with --include-no-data,
sessions the vendor had no data for. Gaps are
ordered by priority: kind, recency, whether the failure is transient, and the day's market
volatility when the manifest records it. Time and size estimates come from the median of the
published sessions. --export writes the list as CSV or JSON, chosen by the file's extension.

\b
Examples:
  spx-data gaps
  spx-data gaps --from 2012-01-03 --export gaps.csv
  spx-data gaps --from 2024-01-01 --to 2024-06-30 --json
"""

CSV_COLUMNS = [
    "session",
    "kind",
    "priority",
    "error_category",
    "attempts",
    "retryable",
    "next_revisit",
    "reasons",
]
# Published sessions: nothing to fetch for them unless asked (fill-gaps --include-incomplete).
NOT_TO_FILL = (GapKind.NO_DATA, GapKind.INCOMPLETE)
EXPORT_SUFFIXES = (".csv", ".json")


def gap_analysis(
    facts: Any,
    settings: Any,
    start: dt.date | None,
    end: dt.date | None,
    *,
    include_no_data: bool = False,
) -> dict:
    """The gap document (what --json prints and --export writes)."""
    from spx_dagster.core.calendar import now_et
    from spx_dagster.core.estimates import estimate_sessions
    from spx_dagster.core.history import find_gaps
    from spx_dagster.core.run_limits import thetadata_pool_limit
    from spx_dagster.core.snapshot import build_snapshot
    from spx_dagster.core.storage.disk import free_bytes

    started = time.perf_counter()
    snapshot = build_snapshot(facts, settings, start, end)
    gaps = find_gaps(
        snapshot.records,
        today=now_et().date(),
        min_quality=float(settings.quality.min_score),
        include_no_data=include_no_data,
        volatility=snapshot.volatility,
    )
    to_fill = [g for g in gaps if g.kind not in NOT_TO_FILL]
    lanes = thetadata_pool_limit(
        settings.thetadata.subscription_tier, settings.effective_concurrency
    )
    output_dir = Path(settings.storage.output_dir)
    guess = estimate_sessions(output_dir, len(to_fill), pool_limit=lanes, runs=snapshot.all_runs)
    free = free_bytes(output_dir)
    counts = Counter(g.kind.value for g in gaps)
    no_data = sum(1 for r in snapshot.records.values() if r.state.value == "no_data")
    return {
        "from": snapshot.start.isoformat(),
        "to": snapshot.end.isoformat(),
        "expected_sessions": len(snapshot.expected),
        "gaps": len(gaps),
        "by_kind": {kind.value: counts.get(kind.value, 0) for kind in GapKind},
        "no_data_sessions": no_data,
        "estimate": {
            **guess.to_dict(),
            "free_bytes": free,
            "fits": guess.bytes + settings.storage.min_free_gb * 1e9 <= free,
        },
        "analysis_seconds": round(time.perf_counter() - started, 3),
        "sessions": [g.to_dict() for g in gaps],
    }


def _export(document: dict, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = to_json(document) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for gap in document["sessions"]:
            writer.writerow({**gap, "reasons": "; ".join(gap["reasons"])})
        text = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(
            f"cannot write the export to {path}: {error.strerror or error}; choose a writable path",
            exit_codes.USAGE,
        )


@click.command("gaps", help=HELP)
@range_options
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the gaps to FILE (.csv or .json).",
)
@click.option(
    "--include-no-data",
    is_flag=True,
    help="Also list sessions the vendor answered 'no data' for (re-checked only on request).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Rows shown in the table (0: all); --json and --export hold every gap.",
)
@json_option
def gaps(
    from_text: str | None,
    to_text: str | None,
    export_path: Path | None,
    include_no_data: bool,
    limit: int,
    as_json: bool,
) -> None:
    if export_path is not None and export_path.suffix.lower() not in EXPORT_SUFFIXES:
        fail(
            f"--export {export_path}: the file name must end in .csv or .json (the format is "
            "chosen by the extension), e.g. --export gaps.csv",
            exit_codes.USAGE,
        )
    start, end = parse_range_or_fail(from_text, to_text)
    settings = load_settings_or_fail()
    storage_or_fail(settings)
    from spx_dagster.core import snapshot  # noqa: F401  (imported before imports_done)
    from spx_dagster.ops.sqlite_facts import reading_facts

    facts = reading_facts()  # without Dagster where the instance allows (ops.sqlite_facts)
    imports_done()
    document = gap_analysis(facts, settings, start, end, include_no_data=include_no_data)
    if export_path is not None:
        _export(document, export_path)
        note(f"wrote {document['gaps']} gap(s) to {export_path}")
    if as_json:
        emit_json(document)
        return
    _print(document, limit)


def _print(document: dict, limit: int) -> None:
    rows = document["sessions"]
    span = f"{document['from']}..{document['to']}"
    if not rows:
        say(f"no gaps in {span}: all {document['expected_sessions']} sessions are complete")
        if document["no_data_sessions"]:
            note(
                f"{document['no_data_sessions']} session(s) had no vendor data "
                "(see them with --include-no-data)"
            )
        return
    shown = rows if limit == 0 else rows[:limit]
    print_table(
        ["session", "kind", "priority", "attempts", "why"],
        (
            [
                g["session"],
                g["kind"],
                f"{g['priority']:.1f}",
                g["attempts"],
                "; ".join(g["reasons"]),
            ]
            for g in shown
        ),
        title=f"Gaps in {span} (highest priority first)",
        no_wrap=["session"],
    )
    if len(shown) < len(rows):
        note(
            f"{len(rows) - len(shown)} more gap(s) not shown (--limit 0 shows all, "
            "--export FILE writes them)"
        )
    kinds = ", ".join(f"{n} {kind}" for kind, n in document["by_kind"].items() if n)
    say(f"{document['gaps']} gap(s) among {document['expected_sessions']} sessions: {kinds}")
    est = document["estimate"]
    if not est["sessions"]:
        _incomplete_note(document)
        return
    basis = "the median of published sessions" if est["basis"] == "history" else "defaults"
    say(
        f"to fill {est['sessions']}: ~{human_seconds(est['seconds'])} with "
        f"{est['parallel_sessions']} session(s) at a time, ~{human_bytes(est['bytes'])} "
        f"(from {basis}; {human_bytes(est['free_bytes'])} free)"
    )
    say(f"  {pace_text(est)}")
    if not est["fits"]:
        note("the estimated size does not fit in the free space minus storage.min_free_gb")
    _incomplete_note(document)
    if document["by_kind"].get("failed") or document["by_kind"].get("never_attempted"):
        say("fill them with: spx-data fill-gaps --dry-run   (then without --dry-run)")


def _incomplete_note(document: dict) -> None:
    if document["by_kind"].get("incomplete"):
        note(
            "incomplete sessions are published with vendor holes: the gap sensor (spx_gap_fill) "
            "re-fetches them 1 and 7 days after their first publish; fill-gaps "
            "--include-incomplete re-runs them now"
        )
