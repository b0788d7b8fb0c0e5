"""``spx-data fill-gaps``: the gap analysis turned into prioritised Dagster backfills.

Gaps come from ``core.history.find_gaps`` over ``defs.session_state.session_snapshot`` (the same
analysis ``spx-data gaps`` prints). The sessions worth re-running are cut, highest priority
first, into backfills of ``--batch-size`` sessions; each batch carries a ``dagster/priority``
tag one below the previous one, so the queued run coordinator launches the most important
sessions first even though every batch is submitted at once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import click

from spx_dagster.cli.output import emit_json, json_option, note, print_table, say, warn
from spx_dagster.cli.read_options import (
    load_settings_or_fail,
    parse_range_or_fail,
    range_options,
    storage_or_fail,
)

HELP = """Fill the gaps: submit the missing, failed, corrupt and low-quality sessions as backfills.

\b
Runs the gap analysis of `spx-data gaps` over --from..--to (default: processing.start_date to
the latest closed session) and submits the sessions worth re-running as Dagster backfills of
--batch-size sessions, highest priority first (kind, recency, transient failures first, market
volatility). Batches are submitted together; a `dagster/priority` tag per batch makes the daemon
launch the first batch's runs first. Left out, with the reason: failures that need a change
before a retry can help (e.g. `permission`), sessions past retry.max_attempts (see `spx-data
retry --force`), sessions in progress or in a backfill that has not ended, sessions the
vendor had no data for, and incomplete sessions (published with vendor holes, which the gap
sensor revisits 1 and 7 days after their first publish) unless --include-incomplete asks to
re-run them now (a full re-run whose publish replaces the session, like `retry --force`).

\b
Examples:
  spx-data fill-gaps --dry-run
  spx-data fill-gaps --from 2024-01-02 --batch-size 20
  spx-data fill-gaps --from 2016-01-04 --to 2016-12-30 --dry-run --json
"""

TRIGGER = "fill_gaps"
DEFAULT_BATCH_SIZE = 50


def plan_fill(
    instance: Any,
    settings: Any,
    start: dt.date | None,
    end: dt.date | None,
    *,
    batch_size: int,
    include_incomplete: bool = False,
) -> dict:
    """The plan: batches of gap sessions in priority order, what is left out and why, estimates."""
    from spx_dagster.cli.backfill_plans import estimate_document
    from spx_dagster.core.calendar import now_et
    from spx_dagster.core.failure_categories import FailureCategory
    from spx_dagster.core.history import GapKind, decide_retry, find_gaps
    from spx_dagster.defs.instance_queries import active_backfill_sessions
    from spx_dagster.defs.session_state import session_snapshot

    snapshot = session_snapshot(instance, settings, start, end)
    runs = snapshot.all_runs
    gaps = find_gaps(
        snapshot.records,
        today=now_et().date(),
        min_quality=float(settings.quality.min_score),
        volatility=snapshot.volatility,
    )
    max_attempts = int(settings.retry.max_attempts)
    queued = active_backfill_sessions(instance)
    chosen, left_out = [], []
    for gap in gaps:
        record = snapshot.records[gap.session]
        reason = None
        if gap.session in queued:
            reason = f"already in backfill {queued[gap.session]}, which has not ended"
        elif gap.kind is GapKind.INCOMPLETE and not include_incomplete:
            when = f"next on {gap.next_revisit}" if gap.next_revisit else "no revisit left"
            reason = (
                f"published with vendor holes; the gap sensor revisits it ({when}); "
                "--include-incomplete re-runs it now"
            )
        elif not gap.retryable:
            category = FailureCategory.parse(gap.error_category)
            reason = f"the failure ({category}) will not fix itself: {category.strategy}"
        elif gap.kind is GapKind.FAILED:
            decision = decide_retry(record, max_attempts=max_attempts, force=False)
            if not decision.allowed:
                reason = decision.reason
        if reason is None:
            chosen.append(gap)
        else:
            left_out.append({**gap.to_dict(), "left_out_because": reason})
    batches = []
    count = (len(chosen) + batch_size - 1) // batch_size
    for index in range(count):
        part = chosen[index * batch_size : (index + 1) * batch_size]
        batches.append(
            {
                "batch": index + 1,
                "priority": count - index,
                "sessions": [g.session.isoformat() for g in part],
                "by_kind": dict(Counter(g.kind.value for g in part)),
                "top_priority": part[0].priority,
                "estimate": estimate_document(settings, len(part), runs=runs),
            }
        )
    return {
        "from": snapshot.start.isoformat(),
        "to": snapshot.end.isoformat(),
        "expected_sessions": len(snapshot.expected),
        "gaps": len(gaps),
        "to_fill": len(chosen),
        "by_kind": dict(Counter(g.kind.value for g in chosen)),
        "batch_size": batch_size,
        "batches": batches,
        "left_out": left_out,
        "estimate": estimate_document(settings, len(chosen), runs=runs),
        "gap_sessions": [g.to_dict() for g in chosen],
    }


def _print_plan(plan: dict, *, submitted: dict[int, str] | None = None) -> None:
    from spx_dagster.cli.backfill_plans import describe_estimate
    from spx_dagster.cli.progress_view import human_bytes, human_duration

    span = f"{plan['from']}..{plan['to']}"
    if not plan["batches"]:
        say(f"no gaps to fill in {span} ({plan['expected_sessions']} expected sessions)")
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(plan["by_kind"].items()))
        say(f"{plan['to_fill']} session(s) to fill in {span}: {kinds}")
        say(f"  {describe_estimate(plan['estimate'])}")
        columns = ["batch", "priority", "sessions", "first..last", "kinds", "time", "size"]
        if submitted is not None:
            columns.append("backfill")
        rows = []
        for b in plan["batches"]:
            row = [
                b["batch"],
                b["priority"],
                len(b["sessions"]),
                f"{min(b['sessions'])}..{max(b['sessions'])}",
                ", ".join(f"{n} {k}" for k, n in sorted(b["by_kind"].items())),
                human_duration(b["estimate"]["seconds"]),
                human_bytes(b["estimate"]["bytes"]),
            ]
            if submitted is not None:
                row.append(submitted.get(b["batch"], ""))
            rows.append(row)
        print_table(columns, rows, title="Backfill plan (highest priority first)")
    if plan["left_out"]:
        print_table(
            ["session", "kind", "left out because"],
            ([g["session"], g["kind"], g["left_out_because"]] for g in plan["left_out"][:30]),
            title=f"Left out ({len(plan['left_out'])})",
            no_wrap=["session"],
        )


@click.command("fill-gaps", help=HELP)
@range_options
@click.option("--dry-run", is_flag=True, help="Print the plan with estimates; submit nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Sessions per backfill.",
)
@click.option(
    "--include-incomplete",
    is_flag=True,
    help="Also re-run incomplete sessions (published with vendor holes) now.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Runs of each backfill at once (see `spx-data backfill --help`).",
)
@json_option
def fill_gaps(
    from_text: str | None,
    to_text: str | None,
    dry_run: bool,
    batch_size: int,
    include_incomplete: bool,
    concurrency: int | None,
    as_json: bool,
) -> None:
    from spx_dagster.cli.backfill_plans import warn_without_daemon
    from spx_dagster.cli.session_running import terminal_or_fail
    from spx_dagster.ops import backfills, runs
    from spx_dagster.ops.instance import open_instance

    start, end = parse_range_or_fail(from_text, to_text)
    settings = load_settings_or_fail()
    storage_or_fail(settings)
    instance = open_instance(settings)
    plan = plan_fill(
        instance,
        settings,
        start,
        end,
        batch_size=batch_size,
        include_incomplete=include_incomplete,
    )
    plan["dry_run"] = dry_run
    if dry_run or not plan["batches"]:
        if as_json:
            emit_json(plan)
        else:
            _print_plan(plan)
            if dry_run and plan["batches"]:
                note("nothing submitted (--dry-run); run without it to submit the backfills")
        return
    storage_or_fail(settings, writing=True)
    terminal_or_fail(settings)
    if concurrency is not None:
        _, concurrency_note = backfills.concurrency_tag(instance, concurrency)
        if concurrency_note:
            warn(concurrency_note)
    warn_without_daemon(instance)
    submitted: dict[int, str] = {}
    for batch in plan["batches"]:
        sessions = [dt.date.fromisoformat(d) for d in batch["sessions"]]
        kinds = ", ".join(sorted(batch["by_kind"]))
        submitted[batch["batch"]] = backfills.submit_backfill(
            instance,
            sessions,
            tags=runs.run_tags(trigger=TRIGGER),
            title=f"spx-data fill-gaps batch {batch['batch']}/{len(plan['batches'])} ({kinds})",
            description=f"{len(sessions)} gap session(s) of {plan['from']}..{plan['to']}",
            concurrency=concurrency,
            priority=batch["priority"],
        )
        batch["backfill_id"] = submitted[batch["batch"]]
    if as_json:
        emit_json(plan)
        return
    _print_plan(plan, submitted=submitted)
    say(
        f"submitted {len(submitted)} backfill(s); follow them with `spx-data backfill list` "
        "or the web UI → Backfills"
    )
