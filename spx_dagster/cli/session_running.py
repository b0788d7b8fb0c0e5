"""What ``process``, ``retry`` and ``demo`` share: checking a session, the storage and the
terminal before any work, running a session with the progress bar and Ctrl-C handling, and
describing its outcome. Commands import this, never each other.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import fail, note, stderr_console, warn

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
    """Run ``session`` in process with a live bar; return its ``runs.SessionOutcome``.

    The first Ctrl-C asks the run to stop (the outcome is then ``interrupted``); a second one
    marks the run canceled and exits 130 at once, unless the session is being published (a
    publish always completes, so nothing half-written is left).
    """
    from spx_dagster.cli.progress_view import SessionProgressView
    from spx_dagster.ops import runs

    output_dir = Path(settings.storage.output_dir)
    view = SessionProgressView(session.isoformat(), enabled=show_progress)
    with view:
        run = runs.run_session(
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
            view.stopping(runs.STOPPABLE_STAGES)
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
    from spx_dagster.core.storage.layout import OutputLayout

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
        f"  manifest: {OutputLayout.of(output_dir).manifest_path(outcome.session)}",
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
    from spx_dagster.cli.progress_view import StdioDiversion
    from spx_dagster.ops import runs

    diversion = StdioDiversion()
    diversion.start()
    try:
        outcome = runs.refresh_catalog(instance, tags=runs.run_tags(trigger=trigger))
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
