"""``spx-data backfill``: Dagster asset backfills over a range of sessions, and managing them.

``backfill START END`` submits one asset backfill of the session assets through the instance
(what the web UI's backfill dialog does); the daemon started by ``spx-data serve`` launches one
run per session, at most ``--concurrency`` at once, and a failed session never stops the others.
``backfill list | status ID | pause ID | resume ID`` manage them.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.backfill_plans import describe_estimate, estimate_document, warn_without_daemon
from spx_dagster.cli.output import (
    emit_json,
    fail,
    json_option,
    note,
    print_table,
    say,
    stderr_console,
    warn,
)
from spx_dagster.cli.read_options import load_settings_or_fail, storage_or_fail
from spx_dagster.core.run_limits import BACKFILL_RUN_LIMIT

HELP = """Backfill a range of sessions through the Dagster daemon, and manage backfills.

\b
`spx-data backfill START END` submits one Dagster asset backfill of the session assets over the
trading sessions in START..END (both inclusive; weekends and NYSE holidays skipped, complete
sessions skipped unless --force). The daemon of `spx-data serve` runs it: one run per session,
a failed session never stops the others, and the runs show in the web UI under the backfill.

\b
--concurrency N limits the runs of this backfill that run at once (a per-backfill tag limited
by dagster.yaml; without it a backfill uses up to {backfill_runs} runs, and fetches across all
runs share the `thetadata` pool sized to the subscription tier). --wait follows the backfill
until it ends with sessions done/failed/total and an ETA (Ctrl-C stops following, not the
backfill).

\b
Subcommands:
  backfill list                 the newest backfills with their progress
  backfill status ID            sessions done, failed (with error category), running, waiting
  backfill pause ID             cancel what is queued or running; published sessions are kept
  backfill resume ID            a new backfill of the sessions ID has not published

\b
Exit codes: 0 submitted (with --wait: every session done), 1 some sessions failed (--wait),
2 bad range or configuration, 3 ThetaTerminal unreachable, 130 interrupted.

\b
Examples:
  spx-data backfill 2024-01-02 2024-03-28 --dry-run
  spx-data backfill 2024-01-02 2024-03-28 --concurrency 2 --wait
  spx-data backfill list
  spx-data backfill pause 2k4fqm1x && spx-data backfill resume 2k4fqm1x
""".replace("{backfill_runs}", str(BACKFILL_RUN_LIMIT))

TRIGGER = "cli"
POLL_SECONDS = 2.0
SUBCOMMANDS = ("run", "list", "status", "pause", "resume")


class BackfillGroup(click.Group):
    """``backfill START END`` is ``backfill run START END``; the other words are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(
            ctx.command_path, "START END [--concurrency N] [--wait] [--dry-run] [--json] | COMMAND"
        )


@click.group("backfill", cls=BackfillGroup, help=HELP)
def backfill() -> None:
    """See HELP."""


# ---------------------------------------------------------------------------------------------
# Shared pieces (fill-gaps and retry use them too)
# ---------------------------------------------------------------------------------------------
def wait_for_backfill(instance: Any, backfill_id: str, *, show: bool = True) -> Any:
    """Follow a backfill until it ends; return its final ``BackfillProgress``.

    Ctrl-C stops following (exit 130); the backfill carries on in the daemon.
    """
    from spx_dagster.cli.progress_view import BackfillProgressView
    from spx_dagster.core.progress import read_progress
    from spx_dagster.defs.assets import progress_dir
    from spx_dagster.ops import backfills

    try:
        with BackfillProgressView(backfill_id, enabled=show) as view:
            while True:
                progress = backfills.backfill_progress(instance, backfill_id)
                running_days = {d.isoformat() for d in progress.running}
                snaps = [
                    s
                    for s in read_progress(Path(progress_dir()))
                    if s.get("session") in running_days
                    and s.get("run_id") in progress.run_ids.values()
                ]
                view.update(progress, snaps)
                if progress.finished:
                    return progress
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        stderr_console().print(
            f"stopped following backfill {backfill_id}; it carries on in the daemon. "
            f"`spx-data backfill status {backfill_id}` shows it, "
            f"`spx-data backfill pause {backfill_id}` stops it."
        )
        sys.exit(exit_codes.INTERRUPTED)


def print_failures(progress: Any) -> None:
    if not progress.failures:
        return
    print_table(
        ["session", "category", "run", "message"],
        (
            [day, f["error_category"], f["run_id"][:8], (f.get("error_message") or "")[:160]]
            for day, f in sorted(progress.failures.items())
        ),
        title=f"Failed sessions of backfill {progress.backfill_id}",
        no_wrap=["session"],
    )


def finish_waiting(progress: Any, as_json: bool) -> None:
    """Print the end of a followed backfill and exit 1 if any session failed."""
    if as_json:
        emit_json(progress.to_dict())
    else:
        say(
            f"backfill {progress.backfill_id} {progress.status.lower()}: "
            f"{len(progress.done)} done, {len(progress.failed)} failed of {progress.total}"
        )
        print_failures(progress)
        if progress.failed:
            note(
                "see why with `spx-data errors`; retry them with `spx-data retry --all-failed` "
                f"or `spx-data backfill resume {progress.backfill_id}`"
            )
    if progress.failed or progress.status in ("CANCELED", "FAILED"):
        sys.exit(exit_codes.WORK_FAILED)


def range_sessions(settings: Any, start_text: str, end_text: str) -> list[dt.date]:
    """Closed sessions in START..END from ``processing.start_date``; exit 2 when none."""
    from spx_dagster.core import calendar

    earliest = settings.processing.start_date
    try:
        start, end = calendar.parse_range(start_text, end_text, earliest=earliest)
        latest = calendar.latest_closed_session()
    except calendar.DateError as error:
        fail(str(error), exit_codes.USAGE)
    if start < earliest:
        note(f"starting at processing.start_date {earliest} (the range began at {start})")
    if end > latest:
        note(f"ending at {latest}, the latest closed session (the range ended at {end})")
    sessions = calendar.sessions_between(max(start, earliest), min(end, latest))
    if not sessions:
        fail(
            f"there is no closed trading session in {start}..{end} on or after "
            f"processing.start_date {earliest} (weekends and NYSE holidays are skipped); "
            "choose a range with trading days, e.g. 2024-03-11 2024-03-15",
            exit_codes.USAGE,
        )
    return sessions


@backfill.command("run", help="Submit a backfill of START..END (same as `backfill START END`).")
@click.argument("start")
@click.argument("end")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help=f"Runs of this backfill at once, 1 to {BACKFILL_RUN_LIMIT} (the default: the "
    "instance's per-backfill limit).",
)
@click.option(
    "--wait", is_flag=True, help="Follow the backfill until it ends (exit 1 on failures)."
)
@click.option("--dry-run", is_flag=True, help="Show the sessions and estimates; submit nothing.")
@click.option("--force", is_flag=True, help="Also re-run sessions that are already complete.")
@json_option
def run_command(
    start: str,
    end: str,
    concurrency: int | None,
    wait: bool,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    from spx_dagster.cli.session_running import terminal_or_fail
    from spx_dagster.core.storage import published_sessions
    from spx_dagster.ops import backfills, runs
    from spx_dagster.ops.instance import open_instance
    from spx_dagster.ops.sqlite_facts import reading_facts

    settings = load_settings_or_fail()
    storage_or_fail(settings)
    sessions = range_sessions(settings, start, end)
    published = published_sessions(
        Path(settings.storage.output_dir), start=sessions[0], end=sessions[-1]
    )
    complete = sorted(d for d, s in published.items() if s.status in ("complete", "no_data"))
    todo = sessions if force else [d for d in sessions if d not in set(complete)]
    skipped = [] if force else [d for d in sessions if d in set(complete)]
    facts = reading_facts()  # without Dagster on a quiet SQLite instance (ops.sqlite_facts)
    document: dict[str, Any] = {
        "from": sessions[0].isoformat(),
        "to": sessions[-1].isoformat(),
        "sessions": [d.isoformat() for d in todo],
        "skipped_complete": [d.isoformat() for d in skipped],
        "forced": force,
        "concurrency": concurrency,
        "estimate": estimate_document(
            settings, len(todo), runs=facts.run_facts(), concurrency=concurrency
        ),
    }
    if not todo:
        document["backfill_id"] = None
        if as_json:
            emit_json(document)
        else:
            say(
                f"all {len(sessions)} session(s) in {sessions[0]}..{sessions[-1]} are already "
                "complete; nothing to backfill (use --force to re-run them)"
            )
        return
    # The instance the facts opened, when they needed Dagster: one open, one reaping of dead runs.
    instance = getattr(facts, "instance", None) or open_instance(settings)
    if concurrency is not None:
        _, concurrency_note = backfills.concurrency_tag(instance, concurrency)
        if concurrency_note:
            warn(concurrency_note)
    if dry_run:
        document["backfill_id"] = None
        if as_json:
            emit_json(document)
            return
        say(
            f"would backfill {len(todo)} session(s) {todo[0]}..{todo[-1]}"
            + (f", skipping {len(skipped)} complete" if skipped else "")
        )
        say(f"  {describe_estimate(document['estimate'])}")
        say(
            "  sessions: "
            + ", ".join(d.isoformat() for d in todo[:20])
            + (" …" if len(todo) > 20 else "")
        )
        return
    storage_or_fail(settings, writing=True)
    terminal_or_fail(settings)
    daemon = warn_without_daemon(instance)
    backfill_id = backfills.submit_backfill(
        instance,
        todo,
        tags=runs.run_tags(trigger=TRIGGER, forced=force),
        title=f"spx-data backfill {todo[0]}..{todo[-1]}",
        description=f"{len(todo)} session(s) submitted by `spx-data backfill`",
        concurrency=concurrency,
    )
    document.update(backfill_id=backfill_id, daemon_running=daemon)
    if skipped and not as_json:
        note(f"skipped {len(skipped)} complete session(s); --force re-runs them")
    if not wait:
        if as_json:
            emit_json(document)
            return
        say(f"submitted backfill {backfill_id}: {len(todo)} session(s) {todo[0]}..{todo[-1]}")
        say(f"  follow it: spx-data backfill status {backfill_id} (or the web UI → Backfills)")
        return
    if not as_json:
        say(f"submitted backfill {backfill_id}: {len(todo)} session(s); following it")
    progress = wait_for_backfill(instance, backfill_id)
    finish_waiting(progress, as_json)


# ---------------------------------------------------------------------------------------------
# list / status / pause / resume
# ---------------------------------------------------------------------------------------------
def _instance() -> Any:
    from spx_dagster.ops.instance import open_instance

    return open_instance(load_settings_or_fail())


def _progress_or_fail(instance: Any, backfill_id: str) -> Any:
    from spx_dagster.ops import backfills

    try:
        return backfills.backfill_progress(instance, backfill_id)
    except KeyError:
        fail(
            f"there is no backfill {backfill_id!r} on this instance; "
            "`spx-data backfill list` shows the ids",
            exit_codes.USAGE,
        )


def _created(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@backfill.command(
    "list",
    help="The newest backfills with their progress.\n\nExample: spx-data backfill list --limit 5",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
def list_command(limit: int, as_json: bool) -> None:
    from spx_dagster.ops import backfills

    instance = _instance()
    rows = [
        backfills.backfill_progress(instance, b.backfill_id)
        for b in backfills.list_backfills(instance, limit=limit)
    ]
    if as_json:
        emit_json({"backfills": [p.to_dict() for p in rows]})
        return
    if not rows:
        say("no backfills on this instance yet; start one with `spx-data backfill START END`")
        return
    print_table(
        ["id", "status", "created", "sessions", "done", "failed", "running", "waiting", "title"],
        (
            [
                p.backfill_id,
                p.status.lower(),
                _created(p.started_at),
                p.total,
                len(p.done),
                len(p.failed),
                len(p.running),
                len(p.queued) + len(p.not_started),
                p.title or "",
            ]
            for p in rows
        ),
        title="Backfills (newest first)",
        no_wrap=["id", "created"],
    )


@backfill.command(
    "status",
    help="Sessions done, failed, running and waiting of one backfill.\n\n"
    "Example: spx-data backfill status 2k4fqm1x --wait",
)
@click.argument("backfill_id")
@click.option("--wait", is_flag=True, help="Follow it until it ends (exit 1 on failures).")
@json_option
def status_command(backfill_id: str, wait: bool, as_json: bool) -> None:
    from spx_dagster.cli.progress_view import human_duration

    instance = _instance()
    progress = _progress_or_fail(instance, backfill_id)
    if wait:
        finish_waiting(wait_for_backfill(instance, backfill_id), as_json)
        return
    if as_json:
        emit_json(progress.to_dict())
        return
    say(
        f"backfill {backfill_id} ({progress.title or 'untitled'}): {progress.status.lower()}, "
        f"{len(progress.done)} done, {len(progress.failed)} failed, {len(progress.running)} "
        f"running, {len(progress.canceled)} canceled, "
        f"{len(progress.queued) + len(progress.not_started)} waiting of "
        f"{progress.total}; elapsed {human_duration(progress.elapsed_s)}, "
        f"ETA {human_duration(progress.eta_s)}"
    )
    if progress.running:
        say("  running: " + ", ".join(d.isoformat() for d in progress.running))
    print_failures(progress)


@backfill.command(
    "pause",
    help="Cancel a backfill's queued and running runs; keep what is published.\n\n"
    "Example: spx-data backfill pause 2k4fqm1x",
)
@click.argument("backfill_id")
@json_option
def pause_command(backfill_id: str, as_json: bool) -> None:
    from spx_dagster.ops import backfills

    instance = _instance()
    before = _progress_or_fail(instance, backfill_id)
    backfill_ = backfills.pause_backfill(instance, backfill_id)
    document = {
        "backfill_id": backfill_id,
        "status": backfill_.status.value,
        "done": len(before.done),
        "running": len(before.running),
        "queued": len(before.queued) + len(before.not_started),
    }
    if as_json:
        emit_json(document)
        return
    if before.finished:
        say(f"backfill {backfill_id} had already ended ({before.status.lower()}); nothing to pause")
    else:
        say(
            f"pausing backfill {backfill_id}: {document['queued']} waiting session(s) canceled, "
            f"{document['running']} running one(s) stopped by the daemon (staged answers kept), "
            f"{document['done']} published one(s) kept"
        )
    say(f"  continue later with: spx-data backfill resume {backfill_id}")


@backfill.command(
    "resume",
    help="Submit a new backfill of the sessions a paused one did not publish.\n\n"
    "Example: spx-data backfill resume 2k4fqm1x --wait",
)
@click.argument("backfill_id")
@click.option("--wait", is_flag=True, help="Follow the new backfill until it ends.")
@json_option
def resume_command(backfill_id: str, wait: bool, as_json: bool) -> None:
    from spx_dagster.ops import backfills

    instance = _instance()
    _progress_or_fail(instance, backfill_id)
    try:
        new_id, remaining = backfills.resume_backfill(instance, backfill_id)
    except RuntimeError as error:
        fail(str(error), exit_codes.USAGE)
    document = {
        "backfill_id": new_id or None,
        "resumed_from": backfill_id,
        "sessions": [d.isoformat() for d in remaining],
    }
    if not remaining:
        if as_json:
            emit_json(document)
        else:
            say(f"backfill {backfill_id} has no session left to publish; nothing to resume")
        return
    warn_without_daemon(instance)
    if not wait:
        if as_json:
            emit_json(document)
            return
        say(
            f"resumed backfill {backfill_id} as new backfill {new_id}: {len(remaining)} "
            "session(s) it had not published (Dagster cannot restart a canceled backfill)"
        )
        say(f"  follow it: spx-data backfill status {new_id}")
        return
    finish_waiting(wait_for_backfill(instance, new_id), as_json)
