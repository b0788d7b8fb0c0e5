"""``spx-data errors``: the error history of sessions, with categories, patterns and advice."""

from __future__ import annotations

import dataclasses

import click

from spx_dagster.cli.output import emit_json, json_option, note, print_table, say
from spx_dagster.cli.read_options import (
    human_time,
    imports_done,
    load_settings_or_fail,
    parse_range_or_fail,
)

HELP = """Show the error history of sessions: every failed run, grouped into patterns.

\b
Failures are grouped by category (with what a retry does about it), by message signature (the
message with dates, numbers and ids blanked, so one bug shows once) and by when they happened
(weekday and hour, ET). Sessions whose last run failed and never succeeded since are listed as
unresolved; `spx-data retry` re-runs them with a strategy chosen from the category.

\b
Examples:
  spx-data errors
  spx-data errors --from 2024-01-01 --to 2024-03-31
  spx-data errors --json
"""


@click.command("errors", help=HELP)
@click.option("--from", "from_text", metavar="D", help="First session (default: all).")
@click.option("--to", "to_text", metavar="D", help="Last session (default: all).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Failed runs listed in the table (0: all); --json holds every one.",
)
@json_option
def errors(from_text: str | None, to_text: str | None, limit: int, as_json: bool) -> None:
    start, end = parse_range_or_fail(from_text, to_text)
    from spx_dagster.core.error_report import error_report
    from spx_dagster.core.history import SessionState
    from spx_dagster.defs.run_history import failure_messages
    from spx_dagster.defs.session_state import session_snapshot
    from spx_dagster.ops.instance import open_instance

    settings = load_settings_or_fail()
    imports_done()
    instance = open_instance()
    snapshot = session_snapshot(instance, settings, start, end)
    facts = snapshot.runs
    intact = {
        day
        for day, record in snapshot.records.items()
        if record.state in (SessionState.COMPLETE, SessionState.NO_DATA)
    }
    untagged = [f.run_id for f in facts if f.failed and not f.error_message]
    if untagged:
        messages = failure_messages(instance, untagged)
        facts = [
            dataclasses.replace(f, error_message=messages[f.run_id]) if f.run_id in messages else f
            for f in facts
        ]
    report = error_report(facts, start=start, end=end, intact=intact)
    if as_json:
        emit_json(report.to_dict())
        return
    _print(report, limit)


def _print(report, limit: int) -> None:
    if report.start or report.end:
        span = f"{report.start or 'the first session'}..{report.end or 'the last'}"
    else:
        span = "all sessions"
    if not report.failures:
        say(f"no failed runs of sessions in {span} ({report.runs} finished run(s))")
        return
    rate = f"{report.error_rate:.0%}" if report.error_rate is not None else "-"
    say(
        f"{report.failures} failed run(s) of {report.failed_sessions} session(s) in {span}; "
        f"error rate {rate} of {report.runs} finished run(s); "
        f"{len(report.unresolved_sessions)} session(s) still failing"
    )
    print_table(
        ["category", "failures", "sessions", "still failing", "transient", "what to do"],
        (
            [
                p.category,
                p.count,
                p.sessions,
                p.unresolved_sessions,
                "yes" if p.transient else "no",
                p.advice,
            ]
            for p in report.by_category
        ),
        title="By category",
    )
    print_table(
        ["failures", "sessions", "categories", "message (variable parts blanked)"],
        (
            [p.count, p.sessions, ", ".join(p.categories), p.signature]
            for p in report.by_signature[:10]
        ),
        title="By message",
    )
    if report.by_hour:
        say("by weekday (ET): " + ", ".join(f"{d} {n}" for d, n in report.by_weekday.items()))
        say("by hour (ET): " + ", ".join(f"{h} {n}" for h, n in report.by_hour.items()))
    if report.by_session_weekday:
        say(
            "by session weekday: "
            + ", ".join(f"{d} {n}" for d, n in report.by_session_weekday.items())
        )
    shown = report.entries if limit == 0 else report.entries[:limit]
    print_table(
        ["when", "session", "attempt", "category", "resolved", "message"],
        (
            [
                human_time(e.when),
                e.session.isoformat(),
                f"{e.attempt}/{e.attempts}",
                e.category,
                "yes" if e.resolved else "no",
                e.message,
            ]
            for e in shown
        ),
        title="Failed runs (newest first)",
        no_wrap=["session", "when"],
    )
    if len(shown) < len(report.entries):
        note(f"{len(report.entries) - len(shown)} older failed run(s) not shown (--limit 0)")
    for line in report.observations:
        say(f"pattern: {line}")
    if report.unresolved_sessions:
        say("retry the failing sessions with: spx-data retry --all-failed --dry-run")
