"""``spx-data process DATE``: one session through the Dagster graph, in process, with progress.

The session's three assets run on the persistent instance (``DAGSTER_HOME``), so the run shows in
the web UI with its checks; the catalog is refreshed after. The pieces here (date and terminal
checks, a run with a progress bar and Ctrl-C handling, the summary) are shared by ``retry`` and
``demo``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import emit_json, fail, json_option, note, say, stderr_console, warn
from spx_dagster.cli.read_options import load_settings_or_fail

HELP = """Process one trading session through the Dagster graph, in this process.

\b
Fetches the session from ThetaTerminal (every root and expiration of the configured datasets),
validates it and publishes it atomically under storage.output_dir, as a run of spx_session_job
on the instance at DAGSTER_HOME (so it shows in the web UI with its checks), then refreshes the
catalog. A live progress bar on stderr shows the stage, the current root and expiration,
requests done/total, rows/min, MB/min, memory and ETA. A complete session is left alone unless
--force is given; a re-run replaces it atomically.

\b
Ctrl-C stops cleanly: requests in flight finish, their answers stay staged for the next run to
resume from, the run is marked failed with category `interrupted`, nothing half-written is left
under the output directory, and the exit code is 130. A second Ctrl-C abandons the run at once.

\b
Exit codes: 0 done (or already complete), 1 the run failed, 2 bad date or configuration,
3 ThetaTerminal unreachable, 130 interrupted.

\b
Examples:
  spx-data process 2024-03-15
  spx-data process 2024-03-15 --force
  spx-data process yesterday --json
"""

TRIGGER = "cli"


# ---------------------------------------------------------------------------------------------
# Checks before any work
# ---------------------------------------------------------------------------------------------
def session_or_fail(text: str, settings: Any) -> dt.date:
    """The closed trading session ``text`` names, not before ``processing.start_date``; else
    exit 2 naming the nearest sessions."""
    from spx_dagster.core.calendar import DateError, parse_session

    try:
        return parse_session(text, earliest=settings.processing.start_date)
    except DateError as error:
        fail(f"cannot process {text!r}: {error}", exit_codes.USAGE)


def storage_or_fail(settings: Any) -> None:
    """Exit 2 unless ``storage.output_dir`` and ``storage.temp_dir`` are writable directories
    (or can be created): a bad one is a configuration error found before anything is fetched,
    not a failed publish after the whole session was downloaded."""
    from spx_dagster.cli.read_options import storage_or_fail as check_storage

    check_storage(settings, writing=True)


def terminal_or_fail(settings: Any) -> None:
    """Exit 3 (2 for a wrong api_version) unless a usable ThetaTerminal answers; a terminal that
    is starting, busy or reconnecting is waited for (up to thetadata.timeout_s), saying so."""
    from spx_dagster.core.thetadata.client import ThetaClient
    from spx_dagster.core.thetadata.health import HealthState

    def waiting(health: Any, pause_s: float, remaining_s: float) -> None:
        note(
            f"waiting for ThetaTerminal: {health.detail}; next check in {pause_s:.1f}s "
            f"(giving up in {remaining_s:.0f}s, thetadata.timeout_s)"
        )

    with ThetaClient.from_settings(settings) as client:
        health = client.wait_ready(on_wait=waiting)
    if health.ok:
        return
    if health.state is HealthState.WRONG_API_VERSION:
        fail(f"ThetaTerminal at {settings.thetadata.base_url}: {health.detail}", exit_codes.USAGE)
    if health.state is HealthState.UNREACHABLE:
        fail(f"ThetaTerminal is not reachable: {health.detail}", exit_codes.TERMINAL_UNREACHABLE)
    if health.waiting:
        fail(
            f"ThetaTerminal at {settings.thetadata.base_url} did not become ready within "
            f"{settings.thetadata.timeout_s:g}s (thetadata.timeout_s): {health.detail}; check "
            "its console, or raise thetadata.timeout_s",
            exit_codes.TERMINAL_UNREACHABLE,
        )
    fail(
        f"ThetaTerminal at {settings.thetadata.base_url} is not usable: {health.detail}",
        exit_codes.TERMINAL_UNREACHABLE,
    )


# ---------------------------------------------------------------------------------------------
# Running a session
# ---------------------------------------------------------------------------------------------
def run_with_progress(
    instance: Any,
    session: dt.date,
    *,
    settings: Any,
    tags: dict[str, str],
    show_progress: bool = True,
    env_overrides: dict[str, str] | None = None,
) -> Any:
    """Run ``session`` in process with a live bar; return its ``runner.SessionOutcome``.

    The first Ctrl-C asks the run to stop (the outcome is then ``interrupted``); a second one
    marks the run canceled and exits 130 at once, unless the session is being published (a
    publish always completes, so nothing half-written is left).
    """
    from spx_dagster.cli import runner
    from spx_dagster.cli.progress_view import SessionProgressView

    output_dir = Path(settings.storage.output_dir)
    view = SessionProgressView(session.isoformat(), enabled=show_progress)
    with view:
        run = runner.run_session(
            instance,
            session,
            tags=tags,
            output_dir=output_dir,
            on_progress=view.update,
            env_overrides=env_overrides,
        )
        try:
            return run.wait()
        except KeyboardInterrupt:
            # The bar says it is stopping; the one line that says how it ended comes after it.
            run.request_stop()
            view.stopping(runner.STOPPABLE_STAGES)
        while True:
            try:
                return run.wait()
            except KeyboardInterrupt:
                if view.last is not None and view.last.stage == "publish":
                    view.message("publishing: it completes in a moment and cannot be cut short")
                    continue
                run.abandon("abandoned by a second Ctrl-C")
                view.close()
                stderr_console().print(
                    f"interrupted: run {run.run_id} of {session} abandoned and marked canceled; "
                    f"staged answers are kept: `spx-data process {session}` resumes from them"
                )
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(exit_codes.INTERRUPTED)


def completed_report(settings: Any, session: dt.date) -> Any | None:
    """The session's verify report when it is published and intact, else None."""
    from spx_dagster.core.storage import verify_session

    report = verify_session(Path(settings.storage.output_dir), session)
    return report if report.ok else None


def describe_success(outcome: Any, settings: Any) -> list[str]:
    """Summary lines of a published session (rows, files, quality, duration, retries)."""
    from spx_dagster.cli.progress_view import human_bytes, human_count, human_duration
    from spx_dagster.core.storage.layout import manifest_path

    m = outcome.manifest
    output_dir = Path(settings.storage.output_dir)
    if m is None:
        return [f"{outcome.session} processed in {human_duration(outcome.seconds)}"]
    quality = "n/a" if m.quality.score is None else f"{m.quality.score:.4f}"
    kind = "published" if m.status == "complete" else f"recorded as {m.status}"
    return [
        f"{outcome.session} {kind} in {human_duration(outcome.seconds)}: "
        f"{human_count(m.rows)} rows in {len(m.files)} files ({human_bytes(m.bytes)}), "
        f"quality {quality}, {m.requests} requests, {sum(m.retries.values())} retries",
        f"  data:     {output_dir}/<dataset>/date={outcome.session}/",
        f"  manifest: {manifest_path(output_dir, outcome.session)}",
        f"  run:      {outcome.run_id} (web UI: spx-data serve → Runs)",
    ]


def describe_failure(outcome: Any) -> str:
    """What failed, its category, and what to try."""
    from spx_dagster.core.failure_categories import FailureCategory

    where = f" in {outcome.failed_step}" if outcome.failed_step else ""
    category = FailureCategory.parse(outcome.error_category)
    message = outcome.error_message or "no message recorded"
    return (
        f"{outcome.session} failed{where} ({category}): {message}\n"
        f"  what to try: {category.next_step(outcome.session)}\n"
        f"  details: run {outcome.run_id} in the web UI (spx-data serve), or "
        f"`spx-data errors --from {outcome.session} --to {outcome.session}`"
    )


def refresh_catalog_or_warn(instance: Any, *, trigger: str = TRIGGER) -> Any:
    """Refresh the catalog in process; a failure is a warning (the data is published).

    A Ctrl-C meanwhile lets the refresh finish and sets ``outcome.interrupted``; the caller says
    so (``interrupted_after_publish``). Dagster's helper processes get no terminal to print on.
    """
    from spx_dagster.cli import runner
    from spx_dagster.cli.progress_view import StdioDiversion

    diversion = StdioDiversion()
    diversion.start()
    try:
        outcome = runner.refresh_catalog(instance, tags=runner.run_tags(trigger=trigger))
    finally:
        diversion.restore()
    if not outcome.ok and not outcome.interrupted:
        warn(
            f"the catalog was not refreshed ({outcome.error}); the session is published. "
            "Retry with `dagster asset materialize -m spx_dagster.definitions --select spx/catalog`"
            " or let the spx_catalog_refresh sensor do it (spx-data serve)"
        )
    return outcome


CATALOG_ADVICE = (
    "`dagster asset materialize -m spx_dagster.definitions --select spx/catalog`, or the "
    "spx_catalog_refresh sensor (spx-data serve)"
)


def interrupted_after_publish(session: dt.date, run_id: str, catalog: Any | None) -> str:
    """The one line of a Ctrl-C that came after the session was published."""
    if catalog is not None and catalog.ok:
        after = "the catalog was refreshed too"
    else:
        after = f"the catalog was not refreshed: {CATALOG_ADVICE} does it"
    return f"interrupted: {session} was published before Ctrl-C took effect (run {run_id}); {after}"


@click.command("process", help=HELP)
@click.argument("date")
@click.option(
    "--force",
    is_flag=True,
    help="Re-run a session that is already complete (the new one replaces it atomically).",
)
@json_option
def process(date: str, force: bool, as_json: bool) -> None:
    from spx_dagster.cli import runner
    from spx_dagster.cli.instance import open_instance

    settings = load_settings_or_fail()
    session = session_or_fail(date, settings)
    storage_or_fail(settings)
    document: dict[str, Any] = {"session": session.isoformat(), "forced": force}
    instance = open_instance(settings)  # also ends the runs of CLI processes that died
    if not force:
        report = completed_report(settings, session)
        if report is not None:
            m = report.manifest
            document.update(
                status="already_complete",
                rows=m.rows,
                files=len(m.files),
                bytes=m.bytes,
                quality_score=m.quality.score,
            )
            if as_json:
                emit_json(document)
            else:
                say(
                    f"{session} is already complete ({m.rows} rows in {len(m.files)} files, "
                    "checksums verified); nothing fetched. Use --force to process it again."
                )
            return
    terminal_or_fail(settings)
    tags = runner.run_tags(trigger=TRIGGER, forced=force)
    outcome = run_with_progress(instance, session, settings=settings, tags=tags, show_progress=True)
    document.update(outcome.to_dict())
    if outcome.status == runner.INTERRUPTED:
        if as_json:
            emit_json(document)
        if outcome.manifest is not None:
            stderr_console().print(interrupted_after_publish(session, outcome.run_id, None))
        else:
            stderr_console().print(
                f"interrupted: {session} stopped (run {outcome.run_id}, category interrupted); "
                f"staged answers are kept: `spx-data process {session}` resumes from them"
            )
        sys.exit(exit_codes.INTERRUPTED)
    if not outcome.ok:
        if as_json:
            emit_json(document)
        fail(describe_failure(outcome), exit_codes.WORK_FAILED)
    catalog = refresh_catalog_or_warn(instance)
    document["catalog"] = {"refreshed": catalog.ok, "sessions": catalog.sessions}
    if catalog.interrupted:
        if as_json:
            emit_json({**document, "interrupted": True})
        stderr_console().print(interrupted_after_publish(session, outcome.run_id, catalog))
        sys.exit(exit_codes.INTERRUPTED)
    if as_json:
        emit_json(document)
        return
    for line in describe_success(outcome, settings):
        say(line)
    if catalog.ok:
        note(f"catalog refreshed: {catalog.sessions} session(s)")
