"""``spx-data retry``: re-run failed sessions with a strategy chosen from how they failed.

Each session's record (``defs.session_state``) gives its attempt history; ``core.history``'s
``decide_retry`` says whether a retry is allowed (never past ``retry.max_attempts`` unless
--force, never for a failure that needs a change first) and which strategy applies. Sessions run
in this process one after another, like ``spx-data process`` (progress bar, Ctrl-C), because a
retry is usually a handful of sessions someone is watching; --backfill hands them to the daemon.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import emit_json, fail, json_option, note, print_table, say, warn
from spx_dagster.cli.read_options import load_settings_or_fail, storage_or_fail

HELP = """Re-run failed sessions with a strategy chosen from the original failure.

\b
Name sessions (DATE ...) or take every failed, canceled and corrupt session (--all-failed; not
both). For each one
the attempt history is read from the Dagster instance and the strategy is chosen from the last
failure's category: throttled (rate_limited) runs again with thetadata.concurrency 1, an
interrupted or crashed run resumes from its staged answers, a corrupt session is fetched and
published afresh, and so on. A session that failed retry.max_attempts times in a row, or whose
failure will not fix itself (permission, invalid_params, ...), is refused unless --force.
Sessions run here one after another with a progress bar, as `spx-data process` does; --backfill
submits them as one Dagster backfill for the daemon instead.

\b
Exit codes: 0 every session retried successfully, 1 a session failed or was refused,
2 bad date or configuration, 3 ThetaTerminal unreachable, 130 interrupted.

\b
Examples:
  spx-data retry 2024-03-15
  spx-data retry --all-failed --dry-run
  spx-data retry 2024-03-15 --force --json
"""

TRIGGER = "retry"
# What a strategy changes for the retried run, by failure category (environment overrides
# read by the run's resources; see core.history.retry_strategy for the words).
STRATEGY_OVERRIDES: dict[str, dict[str, str]] = {
    "rate_limited": {"SPX_DATA_THETADATA__CONCURRENCY": "1"},
}


def _dates_or_fail(texts: tuple[str, ...], settings: Any) -> list[dt.date]:
    from spx_dagster.cli.session_running import session_or_fail

    return sorted({session_or_fail(text, settings) for text in texts})


def attempt_history(runs: list, session: dt.date) -> list[dict]:
    """Every run of ``session``, oldest first: id, status, category, start time, forced."""
    out = []
    for run in sorted((r for r in runs if r.session == session), key=lambda r: r.start_time or 0):
        out.append(
            {
                "run_id": run.run_id,
                "status": run.status,
                "error_category": run.error_category,
                "started": None
                if not run.start_time
                else dt.datetime.fromtimestamp(run.start_time).isoformat(timespec="seconds"),
                "forced": run.forced,
            }
        )
    return out


def plan_retries(instance: Any, settings: Any, dates: list[dt.date], *, force: bool) -> list[dict]:
    """One entry per session: its state, attempts, history, strategy and the decision; no
    ``dates`` means every failed, canceled or corrupt session."""
    from spx_dagster.core.history import SessionState, decide_retry, record_category
    from spx_dagster.defs.session_state import session_snapshot

    if dates:
        snapshot = session_snapshot(instance, settings, min(dates), max(dates))
        chosen = dates
    else:
        snapshot = session_snapshot(instance, settings)
        failing = {SessionState.FAILED, SessionState.CORRUPT, SessionState.CANCELED}
        chosen = sorted(d for d, r in snapshot.records.items() if r.state in failing)
    max_attempts = int(settings.retry.max_attempts)
    plan = []
    for day in chosen:
        record = snapshot.records[day]
        decision = decide_retry(record, max_attempts=max_attempts, force=force)
        category = record_category(record)
        plan.append(
            {
                "session": day.isoformat(),
                "state": record.state.value,
                "attempts": record.attempts,
                "failures_since_success": record.failures_since_success,
                "max_attempts": max_attempts,
                "last_error_category": record.last_error_category,
                "last_error_message": record.last_error_message,
                "strategy": decision.strategy,
                "allowed": decision.allowed,
                "reason": decision.reason,
                "overrides": STRATEGY_OVERRIDES.get(category.value if category else "", {}),
                "history": attempt_history(snapshot.runs, day),
            }
        )
    return plan


def _print_plan(plan: list[dict]) -> None:
    print_table(
        ["session", "state", "failed", "last error", "strategy", "decision"],
        (
            [
                p["session"],
                p["state"],
                f"{p['failures_since_success']}/{p['max_attempts']}",
                p["last_error_category"] or "-",
                p["strategy"] or "-",
                "retry" if p["allowed"] else f"refused: {p['reason']}",
            ]
            for p in plan
        ),
        title="Retry plan",
        no_wrap=["session"],
    )


@click.command("retry", help=HELP)
@click.argument("dates", nargs=-1, metavar="[DATE ...]")
@click.option("--all-failed", is_flag=True, help="Every failed or corrupt session.")
@click.option(
    "--force",
    is_flag=True,
    help="Retry past retry.max_attempts, permanent failures and complete sessions.",
)
@click.option("--dry-run", is_flag=True, help="Show the plan with strategies; run nothing.")
@click.option(
    "--backfill",
    "as_backfill",
    is_flag=True,
    help="Submit the sessions as one Dagster backfill (the daemon runs them) instead.",
)
@json_option
def retry(
    dates: tuple[str, ...],
    all_failed: bool,
    force: bool,
    dry_run: bool,
    as_backfill: bool,
    as_json: bool,
) -> None:
    from spx_dagster.cli.session_running import (
        describe_failure,
        describe_success,
        refresh_catalog_or_warn,
        run_with_progress,
        terminal_or_fail,
    )
    from spx_dagster.ops import backfills, runs
    from spx_dagster.ops.instance import open_instance

    if not dates and not all_failed:
        fail(
            "name the sessions to retry (e.g. `spx-data retry 2024-03-15`) or pass --all-failed; "
            "`spx-data gaps` lists the failed ones",
            exit_codes.USAGE,
        )
    if dates and all_failed:
        fail(
            f"--all-failed takes every failed session, so it cannot be combined with DATE "
            f"({', '.join(dates)}): use `spx-data retry {' '.join(dates)}` or "
            "`spx-data retry --all-failed`",
            exit_codes.USAGE,
        )
    settings = load_settings_or_fail()
    storage_or_fail(settings)  # the plan reads published sessions
    days = _dates_or_fail(dates, settings)
    instance = open_instance(settings)
    plan = plan_retries(instance, settings, days, force=force)
    allowed = [p for p in plan if p["allowed"]]
    refused = [p for p in plan if not p["allowed"]]
    document: dict[str, Any] = {"dry_run": dry_run, "forced": force, "sessions": plan}
    if not plan:
        if as_json:
            emit_json(document)
        else:
            say("no failed or corrupt session to retry")
        return
    if dry_run or not allowed:
        if as_json:
            emit_json(document)
        else:
            _print_plan(plan)
        if refused and not allowed:
            fail(
                f"nothing retried: {len(refused)} session(s) refused ("
                + "; ".join(f"{p['session']}: {p['reason']}" for p in refused[:5])
                + "); --force overrides",
                exit_codes.WORK_FAILED,
            )
        return
    if not as_json:
        _print_plan(plan)
    if not as_backfill:  # the daemon's runs read their own settings
        storage_or_fail(settings, writing=True)
    terminal_or_fail(settings)
    if as_backfill:
        from spx_dagster.cli.backfill_plans import warn_without_daemon

        if any(p["overrides"] for p in allowed):
            warn("strategy settings (e.g. concurrency 1 after throttling) apply only in process")
        warn_without_daemon(instance)
        backfill_id = backfills.submit_backfill(
            instance,
            [dt.date.fromisoformat(p["session"]) for p in allowed],
            tags=runs.run_tags(trigger=TRIGGER, forced=force),
            title=f"spx-data retry of {len(allowed)} session(s)",
        )
        document["backfill_id"] = backfill_id
        if as_json:
            emit_json(document)
        else:
            say(f"submitted backfill {backfill_id}: `spx-data backfill status {backfill_id}`")
        if refused:
            sys.exit(exit_codes.WORK_FAILED)
        return
    results = []
    for entry in allowed:
        session = dt.date.fromisoformat(entry["session"])
        if not as_json:
            note(f"retrying {session}: {entry['strategy']}")
        outcome = run_with_progress(
            instance,
            session,
            settings=settings,
            tags=runs.run_tags(trigger=TRIGGER, forced=force),
            env_overrides=entry["overrides"] or None,
        )
        entry["result"] = outcome.to_dict()
        results.append(outcome)
        if outcome.status == runs.INTERRUPTED:
            if as_json:
                emit_json(document)
            say(f"interrupted during {session}; the remaining sessions were not retried")
            sys.exit(exit_codes.INTERRUPTED)
        if not as_json:
            if outcome.ok:
                for line in describe_success(outcome, settings):
                    say(line)
            else:
                warn(describe_failure(outcome))
    if any(r.ok for r in results):
        catalog = refresh_catalog_or_warn(instance, trigger=TRIGGER)
        document["catalog"] = {"refreshed": catalog.ok, "sessions": catalog.sessions}
    failed = [r for r in results if not r.ok]
    if as_json:
        emit_json(document)
    elif not failed and not refused:
        say(f"retried {len(results)} session(s): all published")
    if failed or refused:
        if not as_json:
            say(
                f"{len(results) - len(failed)} of {len(results)} retried session(s) published; "
                f"{len(failed)} failed, {len(refused)} refused"
            )
        sys.exit(exit_codes.WORK_FAILED)
